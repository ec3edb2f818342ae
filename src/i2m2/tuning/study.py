"""Where a tune keeps its record: one Optuna study per tuned method, in SQLite inside DIR or at ``--storage``.

The study is the record: a tune that stops (Ctrl-C, a killed machine) continues from it, and workers on
several machines share one through ``--storage URL``. Each study remembers what it tunes (the experiment and
its options, the method, the space, the sampler, the seeds and groups); a study made for anything else is
refused rather than mixed in. Optuna is imported here only (the ``[tune]`` extra).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2m2.errors import UserError

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "study.db"
IDENTITY = "i2m2"  # the study user attribute holding what it tunes
INTERRUPTED = "interrupted"  # a trial stopped before it finished: not counted, its point tried again
OWNER = "owner"  # host:pid of the driver that asked for a trial


def optuna_module() -> Any:
    """Optuna, or a :class:`UserError` saying how to install it."""
    try:
        import optuna
    except ImportError as err:
        raise UserError('i2m2 tune needs Optuna: pip install "i2m2[tune]"') from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(out: Path, storage: str | None) -> str:
    """``--storage``, or the SQLite file inside ``out``."""
    return storage if storage is not None else f"sqlite:///{Path(out).resolve() / STUDY_FILE}"


def open_storage(url: str, own: bool) -> optuna.storages.BaseStorage:
    """The studies' storage; one line naming the URL when it cannot be opened (``own``: DIR's file)."""
    optuna = optuna_module()
    what = f"{url.removeprefix('sqlite:///')}" if own else f"--storage {url}"
    try:
        return optuna.storages.RDBStorage(url, skip_compatibility_check=False)
    except Exception as err:  # a bad URL, a missing driver, an unreachable server, not a database
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise UserError(f"{what}: cannot open it as an Optuna study storage ({reason})") from err


def study_name(experiment: str, method: str) -> str:
    return f"{experiment}/{method}"


def check_foreign_studies(storage: optuna.storages.BaseStorage, experiment: str, where: str) -> None:
    """DIR's own storage holds one tune: a study of another experiment there is refused."""
    optuna = optuna_module()
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        identity = summary.user_attrs.get(IDENTITY)
        other = identity.get("experiment") if isinstance(identity, dict) else None
        if other != experiment:
            raise UserError(
                f"{where}: holds study '{summary.study_name}' of experiment {other!r}, not '{experiment}'; "
                "use another --out"
            )


def open_study(
    storage: optuna.storages.BaseStorage, name: str, identity: dict[str, Any], direction: str, where: str
) -> optuna.Study:
    """The study ``name``, created with ``identity`` or checked against it; one line on a mismatch."""
    optuna = optuna_module()
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    recorded = study.user_attrs.get(IDENTITY)
    if recorded is None and not study.trials:
        study.set_user_attr(IDENTITY, identity)
    else:
        check_identity(name, recorded, identity, where)
    return study


def check_identity(name: str, recorded: Any, identity: dict[str, Any], where: str) -> None:
    """One line naming what differs when a study was made for another tune."""
    if recorded == identity:
        return
    recorded = recorded if isinstance(recorded, dict) else {}
    differs = sorted(k for k in {*identity, *recorded} if identity.get(k) != recorded.get(k))
    shown = "; ".join(f"{k}: study {recorded.get(k)!r}, now {identity.get(k)!r}" for k in differs[:3])
    raise UserError(
        f"{where}: study '{name}' was made for another tune ({shown}); use another --out or --storage, "
        "or the same options to continue it"
    )


def check_later_studies(
    storage: optuna.storages.BaseStorage, prefixes: dict[str, dict[str, Any]], where: str
) -> None:
    """Stage-2 studies (named ``PREFIX@experts``) already in the storage were made for this tune, their
    experts aside: checked before stage 1 trains, so a changed space is refused at once."""
    optuna = optuna_module()
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        prefix, at, _ = summary.study_name.partition("@")
        if at and prefix in prefixes:
            recorded = dict(summary.user_attrs.get(IDENTITY) or {})
            recorded.pop("experts", None)
            check_identity(summary.study_name, recorded, prefixes[prefix], where)


def owner() -> str:
    """Who asks for a trial: its host and process, so that a later driver can tell a dead one's trials."""
    return f"{socket.gethostname()}:{os.getpid()}"


def release_stale_trials(study: optuna.Study) -> int:
    """Trials left running by a driver of this host that no longer exists (killed) become interrupted
    failures, so their points are tried again; trials of other hosts are left to them. Their number."""
    optuna = optuna_module()
    host = socket.gethostname()
    released = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        who = str(trial.user_attrs.get(OWNER, ""))
        name, _, pid = who.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            interrupt(study, trial._trial_id)
            released += 1
    return released


def interrupt(study: optuna.Study, trial_id: int) -> None:
    """Mark a running trial as stopped before it finished (not a result; its point runs again)."""
    optuna = optuna_module()
    study._storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
    study._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count toward ``--trials``: every trial but the interrupted ones."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(INTERRUPTED)]
