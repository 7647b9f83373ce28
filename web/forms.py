"""Submit forms: each turns its fields into a job kind's spec and maps the spec's validation
errors back onto its fields, so errors show next to what caused them. Every form takes the
job's name and tags. Verify jobs have a form of fields; train, SFT and eval jobs (and clones)
have a few fields for the settings people change most, laid over a YAML box holding the rest.
"""

from __future__ import annotations

import ast
from functools import cache

import yaml
from flask_wtf import FlaskForm
from pydantic import ValidationError as SpecError
from wtforms import FloatField, IntegerField, StringField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from service.kinds import KINDS
from web.schemas import JobLabels


def _asserts(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class JobForm(FlaskForm):
    """A form that builds a spec; `place_errors` puts each spec error on its field."""

    name = StringField("Name (optional)", validators=[Optional(), Length(max=200)])
    tags = StringField(
        "Tags (optional)",
        description="Separated by spaces or commas, e.g. baseline lr-1e5",
        render_kw={"placeholder": "baseline lr-1e5"},
    )

    def tag_list(self) -> list[str]:
        return (self.tags.data or "").replace(",", " ").split()

    def validate_tags(self, field) -> None:
        try:
            JobLabels(tags=self.tag_list())
        except SpecError as exc:
            error = exc.errors(include_url=False)[0]
            where = f"tag {self.tag_list()[error['loc'][1]]!r}: " if len(error["loc"]) > 1 else ""
            raise ValidationError(where + error["msg"]) from None

    def labels(self) -> JobLabels:
        return JobLabels(name=(self.name.data or "").strip() or None, tags=self.tag_list())

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


# The settings people change most, per kind: (spec path, label, field type). Each is a field
# above the YAML box; a filled one is laid over the YAML, an empty one leaves the YAML's value.
COMMON_SETTINGS: dict[str, tuple[tuple[str, str, type], ...]] = {
    "train": (
        ("model.name", "Model", StringField),
        ("task.name", "Task", StringField),
        ("algorithm.name", "Algorithm", StringField),
        ("optim.learning_rate", "Learning rate", FloatField),
        ("stopping.max_steps", "Steps", IntegerField),
        ("algorithm.group_size", "Group size", IntegerField),
    ),
    "sft": (
        ("model.name", "Model", StringField),
        ("task.name", "Task", StringField),
        ("learning_rate", "Learning rate", FloatField),
        ("max_steps", "Steps", IntegerField),
    ),
    "eval": (
        ("model.name", "Model", StringField),
        ("task.name", "Task", StringField),
        ("num_samples", "Samples per problem", IntegerField),
    ),
}


def _field_name(path: str) -> str:
    return "set_" + path.replace(".", "_")


def _get(spec: dict, path: str):
    for part in path.split("."):
        spec = spec.get(part) if isinstance(spec, dict) else None
    return spec


def _put(spec: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(spec.get(part), dict):
            spec[part] = {}
        spec = spec[part]
    spec[last] = value


class SpecForm(JobForm):
    spec = TextAreaField(
        "Spec (YAML or JSON): everything else",
        validators=[DataRequired()],
        render_kw={"rows": 24, "spellcheck": "false"},
    )
    settings: tuple[tuple[str, str, type], ...] = ()

    @classmethod
    @cache  # one class per kind, not one per request
    def of_kind(cls, kind: str) -> type[SpecForm]:
        """The spec form with `kind`'s common settings as fields of their own."""
        fields = {
            _field_name(path): field_type(label, validators=[Optional()])
            for path, label, field_type in COMMON_SETTINGS.get(kind, ())
        }
        return type(
            f"{kind.title()}SpecForm", (cls,), {**fields, "settings": COMMON_SETTINGS.get(kind, ())}
        )

    @classmethod
    def filled(cls, spec: dict, labels: JobLabels | None = None) -> SpecForm:
        """The form showing `spec`, e.g. a job's own to edit for a clone; each common setting's
        field shows the spec's value as its placeholder."""
        labels = labels or JobLabels()
        form = cls(
            data={
                "spec": yaml.safe_dump(spec, sort_keys=False),
                "name": labels.name or "",
                "tags": " ".join(labels.tags),
            }
        )
        for path, _, _ in cls.settings:
            current = _get(spec, path)
            if current is not None:
                getattr(form, _field_name(path)).render_kw = {"placeholder": str(current)}
        return form

    def common_fields(self) -> list:
        return [getattr(self, _field_name(path)) for path, _, _ in self.settings]

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
        spec = self.parsed
        for path, _, _ in self.settings:
            value = getattr(self, _field_name(path)).data
            if value not in (None, ""):
                _put(spec, path, value)
        return spec

    def field_for(self, loc: tuple) -> str:
        """The common setting's field when the bad value came from it, else the YAML box."""
        path = ".".join(str(part) for part in loc)
        filled = [
            p for p, _, _ in self.settings if getattr(self, _field_name(p)).data not in (None, "")
        ]
        return _field_name(path) if path in filled else "spec"

    def message(self, error: dict) -> str:
        path = ".".join(str(part) for part in error["loc"])
        return f"{path}: {error['msg']}" if path else error["msg"]


def form_for(kind: str) -> JobForm:
    """The form of a new `kind` job; a spec form starts from the kind's defaults."""
    if kind == "verify":
        return VerifyForm()
    return SpecForm.of_kind(kind).filled(
        KINDS[kind].spec().model_dump(mode="json")
    )  # nulls kept: `lora: null` is not a default
