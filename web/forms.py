"""Submit forms: each turns its fields into a job kind's spec and maps the spec's validation
errors back onto its fields, so errors show next to what caused them. Verify jobs have a
form of fields; train, SFT and eval jobs (and clones of any job) edit the whole spec as YAML.
"""

from __future__ import annotations

import ast

import yaml
from flask_wtf import FlaskForm
from pydantic import ValidationError as SpecError
from wtforms import FloatField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, NumberRange

from service.kinds import KINDS


def _asserts(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class JobForm(FlaskForm):
    """A form that builds a spec; `place_errors` puts each spec error on its field."""

    def place_errors(self, exc: SpecError) -> None:
        for error in exc.errors(include_url=False):
            field = self.field_for(error["loc"])
            (getattr(self, field).errors if field else self.form_errors).append(self.message(error))

    def field_for(self, loc: tuple) -> str | None:
        raise NotImplementedError

    def message(self, error: dict) -> str:
        return error["msg"]


class VerifyForm(JobForm):
    program = TextAreaField(
        "Program", validators=[DataRequired()], render_kw={"rows": 10, "spellcheck": "false"}
    )
    tests = TextAreaField(
        "Tests (one assert per line)",
        validators=[DataRequired()],
        render_kw={"rows": 5, "spellcheck": "false"},
    )
    setup = TextAreaField("Setup code (optional)", render_kw={"rows": 2, "spellcheck": "false"})
    wall_seconds = FloatField(
        "Time limit (seconds)", default=10.0, validators=[NumberRange(0.1, 600)]
    )

    def validate_tests(self, field) -> None:
        for n, line in enumerate(_asserts(field.data or ""), start=1):
            try:
                tree = ast.parse(line)
            except SyntaxError as exc:
                raise ValidationError(f"line {n}: {exc.msg}") from None
            if not (len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert)):
                raise ValidationError(f"line {n} is not an assert statement")

    def to_spec(self) -> dict:
        tests = {
            "kind": "function",
            "tests": _asserts(self.tests.data),
            "setup": self.setup.data or "",
        }
        return {
            "requests": [
                {
                    "program": self.program.data,
                    "tests": tests,
                    "limits": {"wall_seconds": self.wall_seconds.data},
                }
            ]
        }

    def field_for(self, loc: tuple) -> str | None:
        """The field a spec error at `loc` belongs to, e.g. ('requests', 0, 'program') -> program."""
        names = {
            "program": "program",
            "tests": "tests",
            "setup": "setup",
            "wall_seconds": "wall_seconds",
        }
        return next((names[part] for part in reversed(loc) if part in names), None)


class SpecForm(JobForm):
    spec = TextAreaField(
        "Spec (YAML or JSON)",
        validators=[DataRequired()],
        render_kw={"rows": 28, "spellcheck": "false"},
    )

    @classmethod
    def filled(cls, spec: dict) -> SpecForm:
        """The form showing `spec`, e.g. a job's own to edit for a clone."""
        return cls(data={"spec": yaml.safe_dump(spec, sort_keys=False)})

    def validate_spec(self, field) -> None:
        try:
            self.parsed = yaml.safe_load(field.data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ValidationError(
                f"not YAML: {where}{getattr(exc, 'problem', None) or exc}"
            ) from None
        if not isinstance(self.parsed, dict):
            raise ValidationError(
                "the spec must be a mapping of fields, e.g. 'model: {name: tiny}'"
            )

    def to_spec(self) -> dict:
        return self.parsed

    def field_for(self, loc: tuple) -> str:
        return "spec"

    def message(self, error: dict) -> str:
        path = ".".join(str(part) for part in error["loc"])
        return f"{path}: {error['msg']}" if path else error["msg"]


def form_for(kind: str) -> JobForm:
    """The form of a new `kind` job; a spec form starts from the kind's defaults."""
    if kind == "verify":
        return VerifyForm()
    return SpecForm.filled(
        KINDS[kind].spec().model_dump(mode="json")
    )  # nulls kept: `lora: null` is not a default
