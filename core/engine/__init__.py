"""The training engine every method reuses: typed configs, the task contract, the trainer, callbacks, checkpoints,
DDP."""
from .callbacks import Callback
from .config import Config, ConfigError, LoaderConfig, fld, load_config
from .launch import build_model, launch
from .rundir import RunContext, latest_run_dir, resolve_run, resume_path
from .task import EvalEnv, Task
from .trainer import Trainer

__all__ = ["Callback", "Config", "ConfigError", "LoaderConfig", "fld", "load_config", "EvalEnv", "Task", "Trainer",
           "RunContext", "resolve_run", "resume_path", "latest_run_dir", "build_model", "launch"]
