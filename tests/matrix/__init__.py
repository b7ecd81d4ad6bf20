"""The egress matrix: every ingress dialect × every egress dialect over shared scenarios.

`payloads/<dialect>.json` holds each scenario as the requests a client of that dialect
sends (placeholders in braces are filled per cell); `facts` says what each scenario must
deliver and which fields each dialect can carry; `observe` reads a simulator back into
one normalized shape so a single comparison serves every pair.
"""
