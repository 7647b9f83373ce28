"""Problem order: per-epoch shuffles, curriculum, restorable position."""

from rlvr.data import ProblemStream
from rlvr.tasks.base import Problem

PROBLEMS = [Problem(id=str(i), prompt=str(i), answer="", difficulty=float(i % 3)) for i in range(6)]


def test_each_epoch_visits_every_problem_once_in_a_seeded_order():
    stream = ProblemStream(PROBLEMS, seed=1)
    first, second = stream.take(6), stream.take(6)
    assert sorted(p.id for p in first) == sorted(p.id for p in second) == [str(i) for i in range(6)]
    assert [p.id for p in first] == [p.id for p in ProblemStream(PROBLEMS, seed=1).take(6)]


def test_a_restored_position_continues_the_same_sequence():
    stream = ProblemStream(PROBLEMS, seed=2)
    stream.take(4)
    saved = stream.state_dict()
    expected = [p.id for p in stream.take(5)]  # crosses into the next epoch
    restored = ProblemStream(PROBLEMS, seed=2)
    restored.load_state_dict(saved)
    assert [p.id for p in restored.take(5)] == expected


def test_curriculum_puts_easier_problems_first():
    order = [p.difficulty for p in ProblemStream(PROBLEMS, seed=3, curriculum=True).take(6)]
    assert order == sorted(order)
