"""The composition root: settings -> database, engine key, services. Wired once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.engine import Engine

from declarations.settings import Settings
from declarations.store import schema
from declarations.store.database import make_engine
from declarations.xmlio import keys
from declarations.xmlio.signature import Signer


@dataclass
class App:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def signer(self) -> Signer:
        """The engine's own key, loaded once (a PEM load costs tens of milliseconds)."""
        if not self.settings.engine_key.exists():
            raise FileNotFoundError(f"no engine key in {self.settings.home}: run 'declarations init' first")
        return Signer.from_files(self.settings.engine_key, self.settings.engine_cert)

    @cached_property
    def ingest(self):
        from declarations.services.ingest import Ingest
        return Ingest(self.engine, self.signer, self.settings)

    @cached_property
    def institutions(self):
        from declarations.services.institutions import InstitutionDesk
        return InstitutionDesk(self.engine, self.settings)

    def init(self) -> None:
        """Create or upgrade the store; create the engine key if there is none."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        keys.ensure_engine_key(self.settings.home)
        schema.upgrade(self.engine)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def build(settings: Settings | None = None) -> App:
    return App(settings or Settings.from_env())
