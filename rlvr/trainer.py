"""The RL loop: problems -> rollout -> grades and rewards -> advantages -> loss -> step.

Owns one training job end to end, read top to bottom in ``Trainer.run``: setup (or resume
from the run directory's latest checkpoint), then per step ``collect`` (batched generate,
scoring, dynamic sampling), ``advantages``, ``update`` (PPO epochs x minibatches), metrics
and experiences through the callback, periodic eval, checkpoints and the stopping rules.
The math lives in ``rlvr.loss``; loading in ``rlvr.policy``; scoring in ``rlvr.scoring``.

Pipelined mode (``spec.overlap_verification``, off by default) is one-step off-policy
training in the manner of veRL's one-step-off-policy recipe and AReaL's bounded staleness,
applied to the verifier instead of the generator. Step t's rollout is scored in a
background thread (``rlvr.pipeline``) while step t+1's rollout is generated with the
current weights; step t then waits for its scores and updates, and step t+1 trains on
samples one update old. The staleness is corrected the PPO way: the loss's old policy is
each row's sampling-time log-probs (``Rollout.logprobs``), never a recomputation, so a
stale row's ratio starts away from 1 and the clip bounds how far one row can pull. All
torch work (generation, reference log-probs with adapters switched off, the update) stays
in the trainer's thread; only the verifier and the reward functions run in the other, and
the verifier must be thread-safe (the sandbox pool is; Celery keeps a result backend per
thread). What it combines with: every advantage and aggregation, the clipped loss, PPO
epochs and target_kl (approx_kl then includes the one-step lag), replay, evals, and the KL
penalty (estimated on the stale rows' tokens, the same approximation as ppo_epochs > 1).
With dynamic sampling only a step's first round overlaps: its refill rounds are sampled
with the current weights and scored at once. Refinement (each turn needs the last one's
grades) and the plain loss (an unbounded ratio) are rejected by the spec. A checkpoint
keeps the sampled but untrained round of the next step, whose problems the stream
position already counts, and a resumed run scores it again: resume is exact.

Metric names follow TRL's GRPO trainer (reward, reward_std, rewards/<name>/mean, kl,
entropy, clip_ratio/*, completions/*, ...), plus pass_rate and num_none_rewards, and the
time a step spent where: generation_time (sampling the rows it trains on), verify_time
(scoring them, wall clock), verify_wait_time (how long the step stood still for scores:
verify_time without the overlap, near 0 when verification is hidden), update_time, and
policy_lag (updates between sampling the batch and training on it).

Rollouts come from the spec's engine (``rlvr.engines``): hf samples with this very model;
vllm samples in a colocated vLLM that gets the weights after each update. vLLM's log-probs
are not the trainer's, so then (and only then) the step's old log-probs are recomputed by
the trainer before its first update, and each token's policy loss is weighted by truncated
importance sampling (``rlvr.importance``), reported as the ``sampling/*`` metrics.

Precision and memory: trained weights and AdamW state are fp32 and every forward runs under
``rlvr.precision``'s autocast (fp16 adds a grad scaler). Each optimizer step's rows go
through forward and backward ``optim.micro_batch_size`` at a time, each micro-batch's loss
weighted by its share of the step's tokens or sequences so the accumulated gradient is the
one-pass gradient; reference and correction log-probs are computed a micro-batch at a time,
and log-probs never materialise the batch's (B, T, V) logits (``rlvr.logprobs``).
"""

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from transformers import get_scheduler, set_seed

from rlvr.callbacks import Callback, Experience
from rlvr.checkpoint import latest_checkpoint, load_state, restore_rng, save_checkpoint
from rlvr.data import ProblemStream
from rlvr.engines import build_engine
from rlvr.evaluate import evaluate
from rlvr.importance import mismatch_metrics, truncated_importance_weights
from rlvr.loss import (
    ADVANTAGES,
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    aggregation_units,
    clip_fractions,
    ema_update,
    kl_k3,
    masked_mean,
)
from rlvr.pipeline import Round, Scoring
from rlvr.policy import ReferencePolicy, load_policy, precision_of
from rlvr.refine import refine
from rlvr.replay import ReplayBuffer, mix
from rlvr.rollout import (
    Rollout,
    generate,
    merge_rollouts,
    policy_logprobs,
    sampling_options,
    warp_of,
)
from rlvr.scoring import ScoredBatch, reward_specs, score_batch
from rlvr.spec import TrainSpec
from rlvr.stopping import converged, reached_target
from rlvr.tasks.base import Grade, Problem, VerifyFn, build_task

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class StepBatch:
    """What one step trains on: P groups of G rollouts, scored."""

    problems: list[Problem]  # (P,)
    rollout: Rollout  # B = P x G rows, prompt-major
    grades: list[Grade]  # (B,)
    rewards: list[float | None]  # (B,)
    components: dict[str, list[float | None]]  # name -> (B,)
    sampled_rewards: list[float | None]  # every completion generated this step, kept or not
    sampled_grades: list[Grade]
    sampled_groups: int
    zero_std_groups: int
    generated_tokens: int
    rollout_time: float
    # With refinement the loss rows are turns: row r belongs to episode row_episode[r], and
    # episode b's last turn is row last_row[b]; turns holds each episode's attempts.
    row_episode: Tensor | None = None  # (R,)
    last_row: list[int] | None = None  # (B,)
    turns: list[list[dict]] | None = None  # (B,)
    extra_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    steps: int
    stop_reason: str
    final_dir: Path
    last_metrics: dict[str, float]


def _informative(group: list[float | None]) -> bool:
    """A group teaches something only when at least two valid rewards differ."""
    valid = [r for r in group if r is not None]
    return len(valid) >= 2 and max(valid) > min(valid)


class Trainer:
    def __init__(
        self,
        spec: TrainSpec,
        run_dir: str | Path,
        callback: Callback | None = None,
        verify: VerifyFn | None = None,
    ):
        self.spec = spec
        self.algo = spec.algorithm.resolved()
        self.warp = warp_of(spec.sampling)  # the loss scores tokens under the sampled distribution
        self.run_dir = Path(run_dir)
        self.callback = callback or Callback()
        self.verify = verify
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "spec.json").write_text(spec.model_dump_json(indent=2))
        set_seed(spec.optim.seed)

        self.task = build_task(spec.task)
        self.rewards = reward_specs(self.task, spec.rewards)
        self.stream = ProblemStream(
            self.task.problems("train"), spec.optim.seed, spec.data.curriculum
        )
        self.eval_problems = self.task.problems("test")[: spec.data.eval_size]

        checkpoint = latest_checkpoint(self.run_dir)
        resume_dir = checkpoint / "model" if checkpoint else None
        self.model, self.tokenizer, self.device = load_policy(spec.model, resume_dir=resume_dir)
        self.precision = precision_of(spec.model)
        self.scaler = self.precision.grad_scaler()
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=spec.optim.learning_rate, weight_decay=spec.optim.weight_decay
        )
        self.scheduler = get_scheduler(
            SCHEDULES[spec.optim.schedule],
            self.optimizer,
            num_warmup_steps=spec.optim.warmup_steps,
            num_training_steps=spec.stopping.max_steps,
        )
        self.reference = ReferencePolicy(self.model, spec.model) if self.algo.kl_coef > 0 else None
        self.engine = build_engine(
            spec.sampling, spec.model, self.model, self.tokenizer, spec.optim.seed
        )
        replay = spec.replay
        self.replay = (
            ReplayBuffer(replay.size, replay.min_size, replay.fraction, spec.optim.seed)
            if replay.enabled
            else None
        )

        self.step = 0
        self.baseline: float | None = None
        self.num_tokens = 0
        self.history: dict[str, list] = {"passes": [], "totals": [], "rewards": []}
        self.scoring = Scoring(self._score_round, background=spec.overlap_verification)
        self.ahead: Round | None = (
            None  # pipelined: the next step's rollout, sampled, maybe being scored
        )
        if checkpoint:
            self._resume(checkpoint)

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            self.scoring.close()

    def _run(self) -> TrainResult:
        metrics: dict[str, float] = {}
        stop_reason = "max_steps"
        while self.step < self.spec.stopping.max_steps:
            started = time.perf_counter()
            batch = self.collect()
            advantages = self.advantages(batch)
            update_metrics = self.update(batch, advantages)
            self.engine.load_weights(self.model)  # the next rollout samples the updated policy
            self.step += 1
            metrics = self.step_metrics(
                batch, advantages, update_metrics, time.perf_counter() - started
            )
            self.callback.on_step(self.step, metrics)
            self.callback.on_experiences(self.step, self.experiences(batch, advantages))
            if self.spec.data.eval_every and self.step % self.spec.data.eval_every == 0:
                self.callback.on_step(self.step, self.evaluate())
            if self.spec.data.checkpoint_every and self.step % self.spec.data.checkpoint_every == 0:
                self.checkpoint()
            reason = self.stop_reason()
            if reason:
                stop_reason = reason
                break
        if not (self.run_dir / "checkpoints" / f"step-{self.step:06d}").exists():
            self.checkpoint()
        final_dir = self.run_dir / "final"
        self.model.save_pretrained(str(final_dir))
        self.tokenizer.save_pretrained(str(final_dir))
        return TrainResult(self.step, stop_reason, final_dir, metrics)

    def stop_reason(self) -> str | None:
        stopping = self.spec.stopping
        if self.callback.should_stop():
            return "cancelled"
        if stopping.target_pass_rate is not None and reached_target(
            self.history["passes"],
            self.history["totals"],
            stopping.target_pass_rate,
            stopping.window,
            stopping.min_confidence,
        ):
            return "target_pass_rate"
        if stopping.convergence_threshold is not None and converged(
            self.history["rewards"], stopping.window, stopping.convergence_threshold
        ):
            return "converged"
        return None

    # ---- rollout and scoring --------------------------------------------------------------

    def sample(self, count: int) -> Round:
        """Draw ``count`` problems and generate G completions for each with the current weights."""
        spec = self.spec
        started = time.perf_counter()
        drawn = self.stream.take(count)
        with self.precision.autocast():
            rollout = self.engine.generate(
                [p.prompt for p in drawn],
                group_size=self.algo.group_size,
                **sampling_options(spec.sampling),
            )
        return Round(drawn, rollout, time.perf_counter() - started, policy_version=self.step)

    def _score_round(self, round: Round) -> ScoredBatch:
        """Grades and rewards of a round; runs in the scoring thread in pipelined mode."""
        group = self.algo.group_size
        return score_batch(
            self.task,
            [p for p in round.problems for _ in range(group)],
            round.rollout.completions,
            self.rewards,
            self.verify,
        )

    def collect(self) -> StepBatch:
        """Sample and score P groups; with dynamic sampling, refill groups that teach nothing.

        Pipelined, the first round is the one sampled during the previous step (already being
        scored), and the next step's round is sampled here before this one's scores are awaited.
        """
        if self.spec.refinement.max_turns > 1:
            with self.precision.autocast():
                return self.collect_episodes()
        spec, group = self.spec, self.algo.group_size
        wanted = spec.optim.prompts_per_step
        rounds = 1 + (spec.data.max_refills if spec.data.dynamic_sampling else 0)
        first, self.ahead = self.ahead or self.sample(wanted), None
        self.scoring.start(first)
        if spec.overlap_verification and self.step + 1 < spec.stopping.max_steps:
            self.ahead = self.sample(
                wanted
            )  # step t+1's rollout, generated while step t's is scored
            self.scoring.start(self.ahead)
        parts, kept_rows, problems = [], [], []
        grades, rewards, components = [], [], {}
        sampled = zero_std = generated = 0
        sampled_rewards, sampled_grades = [], []
        timings = {
            "generation_time": 0.0,
            "verify_time": 0.0,
            "verify_wait_time": 0.0,
            "policy_lag": float(self.step - first.policy_version),
        }
        for attempt in range(rounds):
            current = first if attempt == 0 else self.sample(wanted - len(problems))
            found = self.scoring.wait(current)
            drawn, rollout, scored = current.problems, current.rollout, found.batch
            timings["generation_time"] += current.generation_time
            timings["verify_time"] += found.verify_time
            timings["verify_wait_time"] += found.wait_time
            generated += int(rollout.completion_mask.sum().item())
            sampled_rewards += scored.rewards
            sampled_grades += scored.grades
            keep = []
            for index, problem in enumerate(drawn):
                rows = range(index * group, (index + 1) * group)
                useful = _informative([scored.rewards[r] for r in rows])
                sampled, zero_std = sampled + 1, zero_std + (not useful)
                if useful or not spec.data.dynamic_sampling:
                    keep.extend(rows)
                    problems.append(problem)
            parts.append(rollout)
            kept_rows.append(keep)
            for r in keep:
                grades.append(scored.grades[r])
                rewards.append(scored.rewards[r])
                for name, values in scored.components.items():
                    components.setdefault(name, []).append(values[r])
            if len(problems) >= wanted:
                break
        if (
            not problems
        ):  # nothing informative even after refills: train on the last round (advantages 0)
            kept_rows[-1] = list(range(len(drawn) * group))
            problems = drawn
            grades, rewards = scored.grades, scored.rewards
            components = scored.components
        return StepBatch(
            problems=problems,
            rollout=merge_rollouts(parts, kept_rows, self.tokenizer.pad_token_id),
            grades=grades,
            rewards=rewards,
            components=components,
            sampled_rewards=sampled_rewards,
            sampled_grades=sampled_grades,
            sampled_groups=sampled,
            zero_std_groups=zero_std,
            generated_tokens=generated,
            rollout_time=timings["generation_time"] + timings["verify_wait_time"],
            extra_metrics=timings,
        )

    def collect_episodes(self) -> StepBatch:
        """Sample P groups, then let each failed sample retry with the verifier's feedback (rlvr.refine)."""
        spec, group, refinement = self.spec, self.algo.group_size, self.spec.refinement
        started = time.perf_counter()
        drawn = self.stream.take(spec.optim.prompts_per_step)
        rows = [p for p in drawn for _ in range(group)]
        options = sampling_options(spec.sampling)
        first = generate(
            self.model, self.tokenizer, [p.prompt for p in drawn], group_size=group, **options
        )
        scored = score_batch(self.task, rows, first.completions, self.rewards, self.verify)
        episodes = refine(
            self.model,
            self.tokenizer,
            self.task,
            rows,
            first,
            scored,
            self.rewards,
            self.verify,
            max_turns=refinement.max_turns,
            max_new_tokens=spec.sampling.max_new_tokens,
            reward_mode=refinement.reward,
            loss=refinement.loss,
            discount=refinement.discount,
            show_tests=refinement.show_tests,
            sampling=options,
        )
        zero_std = sum(
            not _informative(episodes.rewards[i * group : (i + 1) * group])
            for i in range(len(drawn))
        )
        return StepBatch(
            problems=drawn,
            rollout=episodes.rollout,
            grades=episodes.grades,
            rewards=episodes.rewards,
            components=episodes.components,
            sampled_rewards=episodes.rewards,
            sampled_grades=episodes.grades,
            sampled_groups=len(drawn),
            zero_std_groups=zero_std,
            generated_tokens=int(episodes.rollout.completion_mask.sum().item()),
            rollout_time=time.perf_counter() - started,
            row_episode=episodes.row_episode,
            last_row=episodes.last_row,
            turns=episodes.turns,
            extra_metrics=episodes.turn_metrics(),
        )

    # ---- advantages -----------------------------------------------------------------------

    def reward_matrix(self, batch: StepBatch) -> tuple[Tensor, Tensor]:
        """Rewards as (P, G) with None -> 0, and the (P, G) mask of valid ones."""
        raw = torch.tensor(
            [math.nan if r is None else r for r in batch.rewards], dtype=torch.float32
        )
        raw = raw.view(len(batch.problems), self.algo.group_size)
        valid = ~torch.isnan(raw)
        return torch.nan_to_num(raw, nan=0.0), valid

    def advantages(self, batch: StepBatch) -> Tensor:
        """One advantage per row.  -> (B,)"""
        rewards, valid = self.reward_matrix(batch)
        baseline = (
            self.baseline
            if self.baseline is not None
            else (rewards[valid].mean().item() if valid.any() else 0.0)
        )
        advantages = ADVANTAGES[self.algo.advantage](
            rewards, valid, self.algo.scale_rewards, baseline
        )
        self.baseline = ema_update(self.baseline, rewards, valid, self.algo.ema_decay)
        return advantages.flatten().to(self.device)

    # ---- the update -----------------------------------------------------------------------

    def update(self, batch: StepBatch, advantages: Tensor) -> dict[str, float]:
        """PPO epochs x minibatches of the clipped (or plain) loss, KL and entropy terms.

        The old policy of the ratio is each row's sampling-time log-probs: 1 at the first
        minibatch for rows sampled with these weights, not 1 for pipelined or replayed rows.
        With an engine that needs correction (vLLM) it is the trainer's recomputation instead,
        and the gap to the sampler goes into TIS weights (``_correct_sampler``)."""
        started = time.perf_counter()
        algo, rollout = self.algo, batch.rollout
        _, valid = self.reward_matrix(batch)
        valid = valid.flatten().to(self.device)  # (B,)
        if batch.row_episode is not None:  # refinement: each row takes its episode's advantage
            episode = batch.row_episode.to(self.device)
            advantages, valid = advantages[episode], valid[episode]  # (R,)
        fresh = (rollout, advantages, valid)
        replayed = (
            self.replay.sample(len(rollout.completions), self.tokenizer.pad_token_id)
            if self.replay
            else None
        )
        rollout, advantages, valid = mix(
            rollout, advantages, valid, replayed, self.tokenizer.pad_token_id
        )
        mask = rollout.completion_mask * valid.unsqueeze(1).float()  # (R, T)
        tis_weights, tis_metrics = None, {}
        if self.engine.needs_correction:
            rollout, tis_weights, tis_metrics = self._correct_sampler(rollout, mask)
        ref_logprobs = None
        if self.reference is not None:
            with self.reference.active() as reference:
                ref_logprobs = self._frozen_logprobs(reference, rollout)
        sums: dict[str, float] = {}
        count = 0
        for _ in range(algo.ppo_epochs):
            epoch_kl = []
            for rows in torch.randperm(len(rollout.completions)).chunk(algo.minibatches):
                rows = rows.to(self.device)
                stats = self._minibatch(
                    rollout,
                    rows,
                    mask[rows],
                    advantages[rows],
                    None if ref_logprobs is None else ref_logprobs[rows],
                    None if tis_weights is None else tis_weights[rows],
                )
                for name, value in stats.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                epoch_kl.append(stats["approx_kl"])
            if algo.target_kl is not None and sum(epoch_kl) / len(epoch_kl) > algo.target_kl:
                break
        if self.replay is not None:
            self.replay.add(*fresh, step=self.step + 1)
        learning_rate = self.scheduler.get_last_lr()[0]
        sums["replay/rows"] = count * (
            0.0 if replayed is None else float(len(replayed[0].completions))
        )
        self.scheduler.step()
        return {
            **{name: total / count for name, total in sums.items()},
            "learning_rate": learning_rate,
            "ppo_updates": float(count),
            "update_time": time.perf_counter() - started,
            **tis_metrics,
        }

    def _correct_sampler(
        self, rollout: Rollout, mask: Tensor
    ) -> tuple[Rollout, Tensor, dict[str, float]]:
        """An engine whose log-probs are not the trainer's (vLLM): the rollout with the trainer's
        own log-probs as the PPO ratio's old policy, each token's TIS weight, and how far the two
        were apart.  mask: (R, T) -> rollout, (R, T), metrics"""
        trainer_old = self._frozen_logprobs(self.model, rollout) * rollout.completion_mask
        cap = self.spec.sampling.tis_cap
        weights = truncated_importance_weights(trainer_old, rollout.logprobs, cap)
        metrics = mismatch_metrics(trainer_old, rollout.logprobs, cap, mask)
        return replace(rollout, logprobs=trainer_old), weights, metrics

    def _micro_batches(self, rows: Tensor) -> tuple[Tensor, ...]:
        """``rows`` in pieces of at most ``optim.micro_batch_size`` (all at once when null)."""
        size = self.spec.optim.micro_batch_size or len(rows)
        return rows.split(size)

    @torch.no_grad()
    def _frozen_logprobs(self, model, rollout: Rollout) -> Tensor:
        """Log-probs of every row under ``model`` without gradients, a micro-batch at a time
        (the reference policy, the sampler correction): activations of one micro-batch at once.
        -> (R, T)"""
        parts = []
        for rows in self._micro_batches(torch.arange(len(rollout.completions), device=self.device)):
            with self.precision.autocast():
                logprobs, _ = policy_logprobs(
                    model,
                    rollout.prompt_ids[rows],
                    rollout.prompt_mask[rows],
                    rollout.completion_ids[rows],
                    rollout.completion_mask[rows],
                    rollout.temperatures[rows],
                    warp=self.warp,
                )
            parts.append(logprobs.float())
        return torch.cat(parts)

    def accumulate_gradients(
        self,
        rollout: Rollout,
        rows: Tensor,
        mask: Tensor,
        advantages: Tensor,
        ref_logprobs: Tensor | None,
        tis_weights: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Backward of one minibatch's loss, a micro-batch at a time, into the parameters' .grad.

        Each micro-batch's loss is its aggregate times its share of the minibatch's units
        (tokens or sequences, ``rlvr.loss.aggregation_units``), so the summed gradient is the
        whole minibatch's, whatever the micro-batch size. Returns the minibatch's detached
        per-token tensors for the metrics.  mask: (R, T); advantages: (R,); refs: (R, T)"""
        algo = self.algo
        aggregate = AGGREGATIONS[algo.loss_aggregation]
        max_tokens = self.spec.sampling.max_new_tokens
        total_units = aggregation_units(algo.loss_aggregation, mask).clamp(min=1)
        kept: dict[str, list[Tensor]] = {"logprobs": [], "entropies": [], "policy": [], "kl": []}
        for part in self._micro_batches(torch.arange(len(rows), device=self.device)):
            chosen, part_mask = rows[part], mask[part]
            with self.precision.autocast():
                logprobs, entropies = policy_logprobs(
                    self.model,
                    rollout.prompt_ids[chosen],
                    rollout.prompt_mask[chosen],
                    rollout.completion_ids[chosen],
                    rollout.completion_mask[chosen],
                    rollout.temperatures[chosen],
                    with_entropy=True,
                    warp=self.warp,
                )
            policy_term = POLICY_LOSSES[algo.policy_loss](
                logprobs, rollout.logprobs[chosen], advantages[part], algo.clip_low, algo.clip_high
            )
            if tis_weights is not None:  # TIS: the sampler was not the trainer (rlvr.importance)
                policy_term = policy_term * tis_weights[part]
            per_token = policy_term - algo.entropy_coef * entropies
            if ref_logprobs is not None:
                kl = KL_ESTIMATORS[algo.kl_estimator](logprobs, ref_logprobs[part])
                per_token = per_token + algo.kl_coef * kl
                kept["kl"].append(kl.detach())
            share = aggregation_units(algo.loss_aggregation, part_mask) / total_units
            loss = aggregate(per_token, part_mask, max_tokens) * share
            self.scaler.scale(loss).backward()
            kept["logprobs"].append(logprobs.detach())
            kept["entropies"].append(entropies.detach())
            kept["policy"].append(policy_term.detach())
        return {name: torch.cat(parts) for name, parts in kept.items() if parts}

    def _minibatch(
        self,
        rollout: Rollout,
        rows: Tensor,
        mask: Tensor,
        advantages: Tensor,
        ref_logprobs: Tensor | None,
        tis_weights: Tensor | None = None,
    ) -> dict[str, float]:
        algo = self.algo
        self.optimizer.zero_grad()
        kept = self.accumulate_gradients(rollout, rows, mask, advantages, ref_logprobs, tis_weights)
        self.scaler.unscale_(self.optimizer)  # clip the true gradient (float16's is scaled)
        max_norm = self.spec.optim.max_grad_norm or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        logprobs, entropies, old = kept["logprobs"], kept["entropies"], rollout.logprobs[rows]
        aggregate = AGGREGATIONS[algo.loss_aggregation]
        max_tokens = self.spec.sampling.max_new_tokens
        per_token = kept["policy"] - algo.entropy_coef * entropies
        stats: dict[str, float] = {}
        if "kl" in kept:
            per_token = per_token + algo.kl_coef * kept["kl"]
            stats["kl"] = masked_mean(kept["kl"], mask).item()
        stats.update(clip_fractions(logprobs, old, advantages, mask, algo.clip_low, algo.clip_high))
        stats["loss"] = aggregate(per_token, mask, max_tokens).item()
        stats["policy_loss"] = aggregate(kept["policy"], mask, max_tokens).item()
        stats["entropy"] = masked_mean(entropies, mask).item()
        stats["approx_kl"] = masked_mean(kl_k3(logprobs, old), mask).item()
        stats["grad_norm"] = grad_norm.item()
        return stats

    # ---- reporting ------------------------------------------------------------------------

    def step_metrics(
        self, batch: StepBatch, advantages: Tensor, update: dict[str, float], step_time: float
    ) -> dict[str, float]:
        """Reward, pass rate and None counts cover every completion sampled this step (dynamic
        sampling's dropped groups too, so they measure the policy); the rest covers the batch
        the update trained on."""
        rollout = batch.rollout
        valid_rewards = torch.tensor([r for r in batch.sampled_rewards if r is not None] or [0.0])
        lengths = rollout.completion_mask.sum(dim=1)
        self.num_tokens += int(rollout.prompt_mask.sum().item() + lengths.sum().item())
        passes = sum(g == "pass" for g in batch.sampled_grades)
        self.history["passes"].append(passes)
        self.history["totals"].append(len(batch.sampled_grades))
        self.history["rewards"].append(valid_rewards.mean().item())
        metrics = {
            "reward": valid_rewards.mean().item(),
            "reward_std": valid_rewards.std().item() if len(valid_rewards) > 1 else 0.0,
            "frac_reward_zero_std": batch.zero_std_groups / batch.sampled_groups,
            "pass_rate": passes / len(batch.sampled_grades),
            "num_none_rewards": float(sum(r is None for r in batch.sampled_rewards)),
            "num_samples": float(len(batch.sampled_rewards)),
            "num_trained_samples": float(len(batch.rewards)),
            "completions/mean_length": lengths.mean().item(),
            "completions/min_length": lengths.min().item(),
            "completions/max_length": lengths.max().item(),
            "completions/clipped_ratio": rollout.truncated.float().mean().item(),
            "advantage/mean_abs": advantages.abs().mean().item(),
            "num_tokens": float(self.num_tokens),
            "step_time": step_time,
            "rollout_time": batch.rollout_time,
            "tokens_per_second": batch.generated_tokens / max(batch.rollout_time, 1e-9),
            **update,
            **batch.extra_metrics,
        }
        for name, values in batch.components.items():
            present = torch.tensor([v for v in values if v is not None] or [math.nan])
            metrics[f"rewards/{name}/mean"] = present.mean().item()
            metrics[f"rewards/{name}/std"] = present.std().item() if len(present) > 1 else 0.0
        return metrics

    def experiences(self, batch: StepBatch, advantages: Tensor) -> list[Experience]:
        rollout, group = batch.rollout, self.algo.group_size
        lengths = rollout.completion_mask.sum(dim=1).tolist()
        prompt_lengths = rollout.prompt_mask.sum(dim=1).tolist()
        logprob_sums = rollout.logprobs.sum(dim=1).tolist()
        records = []
        for sample, grade in enumerate(batch.grades):
            row = (
                batch.last_row[sample] if batch.last_row is not None else sample
            )  # the episode's last turn
            problem = batch.problems[sample // group]
            extra = {"code": grade.details()} if hasattr(grade, "details") else {}
            if batch.turns is not None:
                extra["turns"] = batch.turns[sample]
            records.append(
                Experience(
                    step=self.step,
                    prompt_index=sample // group,
                    sample_index=sample % group,
                    problem_id=problem.id,
                    prompt=problem.prompt,
                    completion=rollout.completions[row],
                    prompt_tokens=int(prompt_lengths[row]),
                    completion_tokens=int(lengths[row]),
                    truncated=bool(rollout.truncated[row]),
                    reward=batch.rewards[sample],
                    reward_components={k: v[sample] for k, v in batch.components.items()},
                    verdict=str(grade),
                    advantage=float(advantages[sample]),
                    logprob_sum=logprob_sums[row],
                    logprob_mean=logprob_sums[row] / max(lengths[row], 1),
                    temperature=float(rollout.temperatures[row]),
                    extra=extra,
                )
            )
        return records

    def evaluate(self) -> dict[str, float]:
        with self.precision.autocast():
            metrics = self._evaluate()
        return {f"eval/{name}": value for name, value in metrics.items()}

    def _evaluate(self) -> dict[str, float]:
        return evaluate(
            self.model,
            self.tokenizer,
            self.task,
            self.eval_problems,
            self.rewards,
            self.spec.sampling,
            greedy=True,
            verify=self.verify,
        )

    # ---- checkpoints ----------------------------------------------------------------------

    def checkpoint(self) -> Path:
        state = {
            "stream": self.stream.state_dict(),
            "baseline": self.baseline,
            "num_tokens": self.num_tokens,
            "history": self.history,
            "ahead": self.ahead.state_dict() if self.ahead else None,
        }
        path = save_checkpoint(
            self.run_dir,
            self.step,
            self.model,
            self.tokenizer,
            self.optimizer,
            self.scheduler,
            state,
            self.spec.data.keep_checkpoints,
        )
        self.callback.on_checkpoint(self.step, str(path))
        return path

    def _resume(self, checkpoint: Path) -> None:
        state = load_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        trainer = state["trainer"]
        self.stream.load_state_dict(trainer["stream"])
        self.baseline = trainer["baseline"]
        self.num_tokens = trainer["num_tokens"]
        self.history = trainer["history"]
        self.ahead = (
            Round(**trainer["ahead"]) if trainer.get("ahead") else None
        )  # scored again when its step comes
        restore_rng(state["rng"])


def train(
    spec: TrainSpec,
    run_dir: str | Path,
    callback: Callback | None = None,
    verify: VerifyFn | None = None,
) -> TrainResult:
    """Run (or resume) an RL job in ``run_dir``; see ``Trainer``."""
    return Trainer(spec, run_dir, callback, verify).run()
