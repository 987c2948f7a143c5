"""Contact profiles and groups in the database: save (insert or update), list, look up."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from types import MappingProxyType
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Table
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from textback.core.profile import ContactProfile
from textback.storage.models import Group
from textback.storage.models import Profile
from textback.storage.models import ProfileGroup

profiles = cast(Table, Profile.__table__)
groups = cast(Table, Group.__table__)
profile_groups = cast(Table, ProfileGroup.__table__)


def _group_ids(connection: Connection, names: Iterable[str]) -> list[int]:
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    found = dict(
        connection.execute(
            select(groups.c.name, groups.c.id).where(groups.c.name.in_(wanted))
        ).all()
    )
    for name in wanted:
        if name not in found:
            found[name] = connection.execute(
                insert(groups).values(name=name).returning(groups.c.id)
            ).scalar_one()
    return [found[name] for name in wanted]


def save_profiles(engine: Engine, people: Iterable[ContactProfile]) -> tuple[int, int]:
    """Insert new profiles and update known ones (by number), groups replaced by the given
    ones, in one transaction; returns (created, updated)."""
    created = updated = 0
    stamp = datetime.now(UTC)
    with engine.begin() as connection:
        for person in people:
            values = {
                "name": person.name,
                "language": person.language,
                "timezone": person.timezone,
                "fields": dict(person.fields),
                "updated_at": stamp,
            }
            profile_id = connection.execute(
                select(profiles.c.id).where(profiles.c.number == person.number)
            ).scalar()
            if profile_id is None:
                profile_id = connection.execute(
                    insert(profiles)
                    .values(number=person.number, created_at=stamp, **values)
                    .returning(profiles.c.id)
                ).scalar_one()
                created += 1
            else:
                connection.execute(
                    update(profiles).where(profiles.c.id == profile_id).values(**values)
                )
                connection.execute(
                    delete(profile_groups).where(profile_groups.c.profile_id == profile_id)
                )
                updated += 1
            ids = _group_ids(connection, person.groups)
            if ids:
                connection.execute(
                    insert(profile_groups),
                    [{"profile_id": profile_id, "group_id": gid} for gid in ids],
                )
    return created, updated


def list_profiles(engine: Engine, *, group: str | None = None) -> list[ContactProfile]:
    """Every profile (of one group, if given), by number, with its groups."""
    query = select(profiles).order_by(profiles.c.number)
    if group is not None:
        query = query.where(
            profiles.c.id.in_(
                select(profile_groups.c.profile_id)
                .join(groups, groups.c.id == profile_groups.c.group_id)
                .where(groups.c.name == group)
            )
        )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        memberships: dict[int, list[str]] = {}
        membership_query = (
            select(profile_groups.c.profile_id, groups.c.name)
            .join(groups, groups.c.id == profile_groups.c.group_id)
            .order_by(groups.c.name)
        )
        for profile_id, name in connection.execute(membership_query):
            memberships.setdefault(profile_id, []).append(name)
    return [
        ContactProfile(
            number=row.number,
            name=row.name,
            language=row.language,
            timezone=row.timezone,
            fields=MappingProxyType(dict(row.fields or {})),
            groups=tuple(memberships.get(row.id, ())),
        )
        for row in rows
    ]


def profile_of(connection: Connection, number: str) -> ContactProfile | None:
    """The profile of ``number``, if there is one."""
    row = connection.execute(select(profiles).where(profiles.c.number == number)).first()
    if row is None:
        return None
    names = connection.execute(
        select(groups.c.name)
        .join(profile_groups, profile_groups.c.group_id == groups.c.id)
        .where(profile_groups.c.profile_id == row.id)
        .order_by(groups.c.name)
    ).scalars()
    return ContactProfile(
        row.number,
        row.name,
        row.language,
        row.timezone,
        MappingProxyType(dict(row.fields or {})),
        tuple(names),
    )
