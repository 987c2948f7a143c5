"""Contact profiles and groups in the database: save (insert or update), list, look up, and
the values a flow's answer saves to the contact (in the answering transaction)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from types import MappingProxyType
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import Select
from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy import update

from textback.channel.timezones import guess_timezone
from textback.core.profile import CHANGEABLE
from textback.core.profile import FIELDS
from textback.core.profile import ContactProfile
from textback.storage.models import Group
from textback.storage.models import Profile
from textback.storage.models import ProfileGroup
from textback.storage.tables import insert_for

profiles = cast(Table, Profile.__table__)
groups = cast(Table, Group.__table__)
profile_groups = cast(Table, ProfileGroup.__table__)


def profile_of_number(dialect: str) -> Select[Any]:
    """The statement that loads one number's profile in one row, its groups joined by ";"
    (which a group's name cannot contain: core.profile.group_problem). The answering
    transaction runs it (inbound.py) when the rules or the handlers name the contact."""
    # The separator is written in the SQL: a bound one would be a parameter rendered when the
    # statement runs, which the prepared statements of the hot path do not do.
    joined = (func.string_agg if dialect == "postgresql" else func.group_concat)(
        groups.c.name, literal_column("';'")
    )
    names = (
        select(joined)
        .select_from(profile_groups.join(groups, groups.c.id == profile_groups.c.group_id))
        .where(profile_groups.c.profile_id == profiles.c.id)
        .correlate(profiles)
        .scalar_subquery()
    )
    return select(
        profiles.c.name,
        profiles.c.language,
        profiles.c.timezone,
        profiles.c.fields,
        names.label("groups"),
    ).where(profiles.c.number == bindparam("number", type_=profiles.c.number.type))


def profile_from_row(number: str, row: Sequence[Any] | None) -> ContactProfile:
    """The profile of ``number`` from a row of profile_of_number (an empty one for None)."""
    if row is None:
        return ContactProfile(number)
    name, language, timezone, fields, names = row
    return ContactProfile(
        number,
        name,
        language,
        timezone,
        MappingProxyType(dict(fields or {})),
        tuple(sorted(names.split(";"))) if names else (),
    )


def profile_for(engine: Engine, number: str) -> ContactProfile:
    """The profile of ``number`` (an empty one when there is none), for the admin's page."""
    with engine.connect() as connection:
        statement = profile_of_number(engine.dialect.name)
        row = connection.execute(statement, {"number": number}).first()
    return profile_from_row(number, row)


def save_changes(
    connection: Connection, number: str, changes: Mapping[str, str], stamp: datetime
) -> None:
    """Save what a flow learned for ``number`` (names as ContactProfile.value takes them:
    ``name``, ``fields.city``) in the caller's transaction, creating the profile if needed
    (its time zone guessed from the number, as an import does).

    The profile row is locked while its fields are merged (PostgreSQL ``FOR UPDATE``), so two
    answers of one person to two of our numbers at once both keep their field.
    """
    own = {name: value for name, value in changes.items() if name in CHANGEABLE}
    fields = {
        name.removeprefix(FIELDS): value
        for name, value in changes.items()
        if name.startswith(FIELDS)
    }
    found = connection.execute(
        select(profiles.c.id, profiles.c.fields)
        .where(profiles.c.number == number)
        .with_for_update()
    ).first()
    if found is None:
        values = {"name": "", "language": "", "timezone": guess_timezone(number), **own}
        created = connection.execute(
            insert_for(connection.engine)(profiles)
            .values(number=number, fields=fields, created_at=stamp, updated_at=stamp, **values)
            .on_conflict_do_nothing(index_elements=["number"])
            .returning(profiles.c.id)
        ).first()
        if created is not None:
            return
        # Added a moment ago by another transaction: update it as found.
        found = connection.execute(
            select(profiles.c.id, profiles.c.fields)
            .where(profiles.c.number == number)
            .with_for_update()
        ).one()
    profile_id, stored = found
    update_values: dict[str, Any] = {**own, "updated_at": stamp}
    if fields:
        update_values["fields"] = {**(stored or {}), **fields}
    connection.execute(update(profiles).where(profiles.c.id == profile_id).values(**update_values))


def field_names(engine: Engine) -> set[str]:
    """Every custom field some profile has (for ``textback check``)."""
    names: set[str] = set()
    with engine.connect() as connection:
        for (fields,) in connection.execute(select(profiles.c.fields)):
            names.update(fields or {})
    return names


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
