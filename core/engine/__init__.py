"""The training engine every method reuses: typed configs, the task contract, the trainer, checkpoints, DDP."""
from .config import Config, ConfigError, LoaderConfig, fld, load_config
from .launch import build_model, launch
from .rundir import latest_run_dir, resume_path, run_output_dir
from .task import EvalEnv, Task
from .trainer import Trainer

__all__ = ["Config", "ConfigError", "LoaderConfig", "fld", "load_config", "EvalEnv", "Task", "Trainer",
           "resume_path", "run_output_dir", "latest_run_dir", "build_model", "launch"]
