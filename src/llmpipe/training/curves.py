"""The training curves as CSV files for `dvc plots`: train.csv at every logging step, val.csv at
every validation, written again in full by a resumed run."""

from pathlib import Path

from lightning.pytorch.callbacks import Callback

from llmpipe.atomic import replace_file
from llmpipe.training.trainer_setup import current_lr


class CurveWriter(Callback):
    """Writes the training curves as CSV for `dvc plots`: <folder>/train.csv (step, loss, lr) at
    every logging step, <folder>/val.csv (step and every val/ metric) at every validation. Every
    rank keeps the rows (the logged values are the same on all), rank zero writes the files."""

    def __init__(self, folder: Path):
        self.folder, self.train, self.val = Path(folder), [], []

    # The rows ride in Lightning's checkpoints, so a resumed run writes the whole curve.
    def state_dict(self) -> dict:
        return {"train": self.train, "val": self.val}

    def load_state_dict(self, state: dict):
        self.train, self.val = list(state["train"]), list(state["val"])

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lr = current_lr(trainer)  # the rate this step trains with

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        metrics = trainer.callback_metrics
        if "train/loss" in metrics and trainer.global_step % trainer.log_every_n_steps == 0:
            row = {"step": trainer.global_step, "loss": float(metrics["train/loss"]), "lr": self.lr}
            if not self.train or self.train[-1]["step"] != row["step"]:  # once per optimizer step
                self.train.append(row)

    def on_validation_end(self, trainer, module):
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            values = {
                k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
            }
            self.val.append({"step": trainer.global_step, **values})

    def on_fit_end(self, trainer, module):
        if trainer.is_global_zero:
            write_csv(self.folder / "train.csv", self.train)
            if self.val:  # a run without validation (task-adaptive pretraining) has no val curve
                write_csv(self.folder / "val.csv", self.val)


def write_csv(path: Path, rows: list[dict]):
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["step"]
    with replace_file(path) as tmp:
        lines = [",".join(columns)] + [",".join(f"{row.get(c, '')}" for c in columns) for row in rows]
        tmp.write_text("\n".join(lines) + "\n")
