"""GSM8K: grade-school word problems with a final ``#### N``.

Owns the prompt template, the answer parser (``#### N``, else the last number) and the
numeric comparison after normalisation (commas, ``$``, trailing ``.0``). Rows come from
``source`` (``rlvr.tasks.sources``): by default data/gsm8k/train.jsonl and test.jsonl, else
the source's split of the same name with the same ``question``/``answer`` fields.
"""

import re
from typing import Literal

from pydantic import Field

from rlvr.tasks.base import Grade, Problem, Task, TaskOptions, check_split, register_task
from rlvr.tasks.sources import Source, load_rows, source_field
from rlvr.text import last_number, normalize_number

_FINAL = re.compile(r"####\s*([^\n]+)")


class GSM8KOptions(TaskOptions):
    name: Literal["gsm8k"] = Field("gsm8k", description="GSM8K word problems, numeric answers.")
    template: str = Field(
        "Question: {question}\nAnswer:", description="Prompt template; `{question}`."
    )
    limit: int | None = Field(None, ge=1, description="Keep only the first N rows of each split.")
    source: Source = source_field("data/gsm8k; the hub's copy is `hf:openai/gsm8k:main`")


def parse_answer(text: str) -> str | None:
    """The normalised number after ``####``, else the last number in ``text``.

    >>> parse_answer("so 1,200 eggs\\n#### 1,200"), parse_answer("It is $18.00.")
    ('1200', '18')
    """
    final = _FINAL.search(text)
    if final:
        return normalize_number(final.group(1)) or last_number(final.group(1))
    return last_number(text)


@register_task("gsm8k")
class GSM8K(Task):
    options_type = GSM8KOptions
    options: GSM8KOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        rows = load_rows(self.options.source, split, bundled=f"gsm8k/{split}.jsonl")
        return [
            Problem(
                id=f"gsm8k-{split}-{index}",
                prompt=self.options.template.format(question=row["question"]),
                answer=parse_answer(row["answer"]) or "",
                difficulty=float(row["answer"].count("\n")),
                metadata={"solution": row["answer"]},
            )
            for index, row in enumerate(rows[: self.options.limit])
        ]

    def check(self, problem: Problem, completion: str) -> Grade:
        return "pass" if parse_answer(completion) == problem.answer else "fail"

    def reference(self, problem: Problem) -> str:
        return " " + re.sub(r"<<.*?>>", "", problem.metadata["solution"])
