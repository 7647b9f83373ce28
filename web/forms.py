"""Submit forms, one per job kind: each turns its fields into the kind's spec and maps the
spec's validation errors back onto its fields, so errors show next to what caused them."""

from __future__ import annotations

import ast

from flask_wtf import FlaskForm
from wtforms import FloatField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, NumberRange


def _asserts(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class VerifyForm(FlaskForm):
    program = TextAreaField("Program", validators=[DataRequired()], render_kw={"rows": 10, "spellcheck": "false"})
    tests = TextAreaField("Tests (one assert per line)", validators=[DataRequired()],
                          render_kw={"rows": 5, "spellcheck": "false"})
    setup = TextAreaField("Setup code (optional)", render_kw={"rows": 2, "spellcheck": "false"})
    wall_seconds = FloatField("Time limit (seconds)", default=10.0, validators=[NumberRange(0.1, 600)])

    def validate_tests(self, field) -> None:
        for n, line in enumerate(_asserts(field.data or ""), start=1):
            try:
                tree = ast.parse(line)
            except SyntaxError as exc:
                raise ValidationError(f"line {n}: {exc.msg}") from None
            if not (len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert)):
                raise ValidationError(f"line {n} is not an assert statement")

    def to_spec(self) -> dict:
        tests = {"kind": "function", "tests": _asserts(self.tests.data), "setup": self.setup.data or ""}
        return {"requests": [{"program": self.program.data, "tests": tests,
                              "limits": {"wall_seconds": self.wall_seconds.data}}]}

    def field_for(self, loc: tuple) -> str | None:
        """The field a spec error at `loc` belongs to, e.g. ('requests', 0, 'program') -> program."""
        names = {"program": "program", "tests": "tests", "setup": "setup", "wall_seconds": "wall_seconds"}
        return next((names[part] for part in reversed(loc) if part in names), None)


FORMS = {"verify": VerifyForm}
