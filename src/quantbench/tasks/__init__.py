"""Tasks: model + data + metric. ``build_task`` resolves a name or a user file."""
from . import digits_cnn, embedding, lm, tabular  # noqa: F401  (registers the built-in tasks)
from .base import TASKS, Splits, Task
from .user_file import UserTask, is_user_task, load_user_task


def build_task(name: str, **options) -> Task:
    if is_user_task(name):
        return load_user_task(name, **options)
    return TASKS.get(name)(**options)


__all__ = ["TASKS", "Splits", "Task", "UserTask", "build_task"]
