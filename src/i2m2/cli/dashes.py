"""Accept ``--snr-db`` as well as ``--snr_db``: jsonargparse names options after Python parameters.

Options built from a signature (``add_function_arguments``, ``add_class_arguments``) are spelled with
underscores, while the docs and users' scripts write dashes. :func:`underscored` rewrites the dashed
spelling of the options a parser knows into theirs before parsing, so both work.
"""

from __future__ import annotations

from collections.abc import Iterable


def underscored(argv: list[str], names: Iterable[str], groups: Iterable[str] = ()) -> list[str]:
    """``argv`` with ``--snr-db`` / ``--snr-db=X`` rewritten to ``--snr_db`` / ``--snr_db=X``.

    Only the option part (before ``=``) of the given ``names`` changes: values, unknown options (left for
    the parser to reject by their own spelling) and everything after a bare ``--`` stay as they are.

    Args:
        argv: the command line, without the program or command name.
        names: the options' names as the parser knows them, without the leading dashes (``snr_db``,
            ``pretrain.batch_size``).
        groups: nested options whose keys are free (``finetune_methods``, ``trainer``): any
            ``--finetune-methods.intra.max-epochs`` becomes ``--finetune_methods.intra.max_epochs``.
    """
    dashed = {"--" + name.replace("_", "-"): "--" + name for name in names if "_" in name}
    nested = set(groups)
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + argv[index:]
        option, equals, value = arg.partition("=")
        if option in dashed:
            option = dashed[option]
        elif option.startswith("--") and option[2:].replace("-", "_").split(".")[0] in nested:
            option = "--" + option[2:].replace("-", "_")
        out.append(option + equals + value)
    return out
