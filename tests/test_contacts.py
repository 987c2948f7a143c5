"""``textback contacts``: import a CSV (bad rows named, the rest kept), list, export, round trip."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner

from textback.cli import main
from textback.core.contact_csv import read_contacts
from textback.core.contact_csv import write_contacts
from textback.core.profile import ContactProfile

PEOPLE = """phone,name,language,timezone,groups,City,Date of birth
(415) 555-0100,Ann Lee,en,,patients;volunteers,Oakland,1980-02-03
+44 20 7183 8750,Bob,en-GB,Europe/London,patients,London,
555,Nobody,en,,patients,,
+12125550100,Cy,english!,,,,
+12125550101,Di,es,Mars/Base,,,
+12125550102,"=HYPERLINK(""http://x"")",es,,staff,,
"""


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def env_for(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}


def test_import_reports_bad_rows_and_keeps_the_rest(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path, database_url)
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE)
    code, out, err = invoke(env, "contacts", "import", str(path))
    assert code == 1  # something was skipped: say so to scripts too
    assert out == f"{path}: 3 contact(s) added, 0 updated, 3 row(s) skipped\n"
    assert f"{path}: line 4: '555' is not" in err
    assert f"{path}: line 5: language 'english!'" in err
    assert f"{path}: line 6: time zone 'Mars/Base'" in err

    code, out, _ = invoke(env, "contacts")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("+12125550102  =HYPERLINK")
    assert rows[1] == (
        "+14155550100  Ann Lee  en  America/Los_Angeles  patients;volunteers  "
        "city=Oakland date_of_birth=1980-02-03"
    )
    assert rows[2].startswith("+442071838750  Bob  en-GB  Europe/London  patients  city=London")

    code, out, err = invoke(env, "contacts", "--group", "volunteers")
    assert out.splitlines() == [rows[1]] and "1 contact(s) in 'volunteers'" in err


def test_reimport_updates_and_export_round_trips(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path, database_url)
    first = tmp_path / "first.csv"
    first.write_text("phone,name,groups,city\n4155550100,Ann,patients,Oakland\n")
    assert invoke(env, "contacts", "import", str(first))[0] == 0
    again = tmp_path / "again.csv"
    again.write_text("phone,name,groups,city\n+1 415 555 0100,Ann Lee,staff,Berkeley\n")
    code, out, _ = invoke(env, "contacts", "import", str(again))
    assert (code, out) == (0, f"{again}: 0 contact(s) added, 1 updated\n")
    code, listed, _ = invoke(env, "contacts")
    assert listed.splitlines() == [
        "+14155550100  Ann Lee  -  America/Los_Angeles  staff  city=Berkeley"
    ]

    code, exported, _ = invoke(env, "contacts", "export", "--csv")
    assert code == 0
    assert exported == (
        "phone,name,language,timezone,groups,city\n"
        "+14155550100,Ann Lee,,America/Los_Angeles,staff,Berkeley\n"
    )
    back = tmp_path / "back.csv"
    back.write_text(exported)
    assert (
        invoke(env, "contacts", "import", str(back))[1]
        == f"{back}: 0 contact(s) added, 1 updated\n"
    )
    assert invoke(env, "contacts")[1] == listed


def test_a_file_without_a_phone_column_is_refused(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path, database_url)
    path = tmp_path / "bad.csv"
    path.write_text("name,city\nAnn,Oakland\n")
    result = CliRunner().invoke(main, ["contacts", "import", str(path)], env=env)
    assert result.exit_code == 1
    assert result.output == f"textback: error: {path}: no 'phone' column in the header row\n"


def test_formula_cells_are_safe_in_a_spreadsheet_and_read_back_as_they_were() -> None:
    person = ContactProfile("+14155550100", name="=cmd|' /C calc'!A0", fields={"note": "@SUM(1)"})
    out = io.StringIO()
    write_contacts([person], out)
    assert "'=cmd" in out.getvalue() and "'@SUM(1)" in out.getvalue()
    people, problems = read_contacts(
        io.StringIO(out.getvalue()), normalize=lambda n: n, guess_timezone=lambda n: ""
    )
    assert problems == [] and people[0].name == person.name
    assert dict(people[0].fields) == {"note": "@SUM(1)"}
