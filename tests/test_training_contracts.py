"""What the trainer asks of its parts (anycl.training.contracts): callbacks with only the hooks they need, the
checkpointer's state record, the sampler's and evaluator's declared attributes."""

import torch
from toy_modality import toy_rows

import anycl
from anycl.evaluation.base import Evaluator
from anycl.sampling import InBatchSampler
from anycl.training.args import TrainingArgs
from anycl.training.best import EarlyStopping
from anycl.training.checkpoint import Checkpointer, TrainingState, complete_checkpoints
from anycl.training.contracts import Callback, as_callback
from anycl.training.trainer import Trainer

TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3)


def test_callbacks_with_only_some_hooks_and_plain_functions_are_called_at_their_places():
    calls = []

    class EndOnly(Callback):  # no on_step_end, no on_evaluate
        def on_train_end(self, trainer):
            calls.append(("end", trainer.global_step))

    class EvaluateOnly:  # another class, with one hook
        def on_evaluate(self, trainer, step, metrics):
            calls.append(("evaluate", step))

    model = anycl.fit(
        toy_rows(32),
        max_steps=4,
        eval_dataset=lambda m: {"x": 1.0},
        eval_every=2,
        callbacks=[EndOnly(), EvaluateOnly(), lambda trainer, step, logs: calls.append(("step", step))],
        **TOY,
    )
    steps = [s for kind, s in calls if kind == "step"]
    assert steps == list(range(1, model.trainer.global_step + 1)) == [1, 2, 3, 4]
    assert [s for kind, s in calls if kind == "evaluate"] == [r["step"] for r in model.trainer.eval_history]
    assert [c for c in calls if c[0] == "end"] == [("end", 4)]


def test_a_callable_object_is_called_after_each_step_unless_it_has_on_step_end_or_on_train_end():
    seen = []

    class CallableWithEvaluate:
        def __call__(self, trainer, step, logs):
            seen.append(("called", step))

        def on_evaluate(self, trainer, step, metrics):
            seen.append(("evaluate", step))

    class CallableWithEnd(CallableWithEvaluate):
        def on_train_end(self, trainer):
            seen.append(("end", None))

    a, b = as_callback(CallableWithEvaluate()), as_callback(CallableWithEnd())
    for cb in (a, b):
        cb.on_step_end(None, 1, {})
        cb.on_evaluate(None, 1, {})
        cb.on_train_end(None)
        assert cb.checkpoint_state() is None
    assert seen == [("called", 1), ("evaluate", 1), ("evaluate", 1), ("end", None)]
    stopping = EarlyStopping("x", patience=2)
    assert as_callback(stopping) is stopping


class FakeAccelerator:
    is_main_process, process_index, num_processes = True, 0, 1

    def wait_for_everyone(self):
        pass


def parts(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


def test_the_checkpointer_round_trips_the_state_record_and_the_parts(tmp_path):
    saved = parts(0)
    writer = Checkpointer(FakeAccelerator(), saved, tmp_path, every=2, keep=None)
    assert [writer.due(s) for s in range(1, 5)] == [False, True, False, True]
    state = TrainingState(
        global_step=4,
        epoch=1,
        next_batch=2,
        sampler={"seed": 3, "negatives": [["a", "b"], ["c", "d"]]},
        callbacks={"1:EarlyStopping": {"best": 0.5, "best_step": 2, "bad_evaluations": 1}},
    )
    torch.manual_seed(11)
    path = writer.save(state)
    after_save = torch.rand(3)
    assert [s for s, _ in complete_checkpoints(tmp_path)] == [4]

    loaded = parts(1)  # other weights, optimiser moments and schedule position
    torch.manual_seed(99)
    reader = Checkpointer(FakeAccelerator(), loaded, None, every=None)
    assert reader.due(4) is False  # no directory: resume only
    assert reader.resume(path) == state
    torch.testing.assert_close(torch.rand(3), after_save)  # the random state came back too
    for name in ("model", "optimizer", "scheduler"):
        torch.testing.assert_close(loaded[name].state_dict(), saved[name].state_dict(), rtol=0, atol=0)


def test_the_trainer_makes_and_applies_the_state_record_with_its_callbacks_by_position_and_class():
    class Counter(Callback):
        def __init__(self):
            self.n = 0

        def checkpoint_state(self):
            return {"n": self.n}

        def load_checkpoint_state(self, state):
            self.n = state["n"]

    sampler = InBatchSampler(seed=5)
    counter, stopping = Counter(), EarlyStopping("x", patience=3)
    trainer = Trainer(None, None, None, sampler, None, TrainingArgs(), callbacks=[lambda *a: None, counter, stopping])
    counter.n, stopping.bad_evaluations, trainer.global_step = 7, 2, 9
    state = trainer.training_state(epoch=2, next_batch=3)
    assert state == TrainingState(
        9, 2, 3, {"seed": 5}, {"1:Counter": {"n": 7}, "2:EarlyStopping": stopping.checkpoint_state()}
    )
    other = Trainer(None, None, None, InBatchSampler(seed=0), None, TrainingArgs(), callbacks=[print, Counter()])
    other.restore(state)  # position 2 has no callback here: its state is left alone
    assert (other.global_step, other.sampler.seed, other.callbacks[1].n) == (9, 5, 7)


def test_the_trainer_sets_the_samplers_and_evaluators_declared_attributes():
    seen = []

    class Watched(Evaluator):
        def __call__(self, model):
            seen.append(self.show_progress)
            return {"x": 1.0}

    sampler = InBatchSampler()
    assert (sampler.refresh_every, sampler.show_progress, sampler.total_steps) == (None, False, None)
    model = anycl.fit(toy_rows(32), max_steps=3, sampler=sampler, eval_dataset=Watched(), **{**TOY, "progress": True})
    used = model.trainer.sampler  # fit copies a sampler object
    assert (used.show_progress, used.total_steps) == (True, 3)
    assert seen and all(seen)


def test_a_plain_function_evaluator_needs_no_attributes():
    model = anycl.fit(toy_rows(32), max_steps=2, eval_dataset=lambda m: {"x": 2.0}, **TOY)
    assert [r["x"] for r in model.trainer.eval_history] == [2.0, 2.0]
