"""Inbound credentials to tenants. A key may be given for every dialect or for one."""
from .config import Config, Tenant


class Auth:
    def __init__(self, config: Config):
        self.open = config.open_access
        self.default = config.tenants[0] if config.tenants else None
        self._any: dict[str, Tenant] = {}
        self._by_dialect: dict[tuple[str, str], Tenant] = {}
        for tenant in config.tenants:
            for dialect, key in tenant.credentials():
                if dialect is None:
                    self._any[key] = tenant
                else:
                    self._by_dialect[(dialect, key)] = tenant

    def tenant(self, dialect: str, credential: str | None) -> Tenant | None:
        if credential:
            found = self._by_dialect.get((dialect, credential)) or self._any.get(credential)
            if found is not None:
                return found
        return self.default if self.open else None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
