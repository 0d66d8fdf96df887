"""Settings declared once: each is a dataclass field with its type, default, help and bounds.

From that one declaration come the command line (:func:`command_options` makes a click option
per field, ``--config FILE.toml`` included), the checks (:meth:`Settings.__post_init__` refuses
an invalid value before any work, naming the option), and what an artefact records
(:meth:`Settings.as_record`). A subclass changes an inherited setting's default with
:func:`default` and keeps its help and bounds.

Types the command line understands: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``),
``Path``, ``Literal[...]`` (a choice), ``X | None``, and ``list[X]`` (a repeatable option, or one
comma-separated value with ``comma=True``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .errors import DistillError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI (setup.cfg requires it before 3.11)
    import tomli as tomllib


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    min: float | None = None,
    max: float | None = None,
    below: float | None = None,
    above: float | None = None,
    pattern: tuple[str, str] | None = None,
    comma: bool = False,
    exists: bool = False,
    metavar: str | None = None,
    argument: bool = False,
    on_off: bool = True,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """One setting. ``min``/``max`` are inclusive bounds, ``above``/``below`` exclusive ones;
    ``pattern`` (a regular expression a string must match whole, the same in words); ``flag`` the option's name when it
    is not ``--field-name``; ``comma``: a list given as one comma-separated value; ``exists``: a
    path that must exist; ``argument``: a positional argument, not an option; ``on_off``: a bool
    as ``--x/--no-x`` (False: ``--x`` alone); ``convert``: turns a value as typed (each item of a
    list) into the value held, e.g. ``NAME=DIR`` into a pair."""
    metadata = {
        "help": help,
        "flag": flag,
        "min": min,
        "max": max,
        "below": below,
        "above": above,
        "pattern": pattern,
        "comma": comma,
        "exists": exists,
        "metavar": metavar,
        "argument": argument,
        "on_off": on_off,
        "convert": convert,
    }
    if isinstance(default, list):
        return dataclasses.field(default_factory=functools.partial(list, default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def default(value: Any) -> Any:
    """An inherited setting with another default; its help and bounds stay the base class's."""
    if isinstance(value, list):
        return dataclasses.field(default_factory=functools.partial(list, value), metadata={"inherit": True})
    return dataclasses.field(default=value, metadata={"inherit": True})


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


@dataclasses.dataclass(kw_only=True)
class Settings:
    """Base of every command's settings: checks each value when the settings are made."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for field in settings_fields(type(self)):
            value, convert = getattr(self, field.name), field.metadata["convert"]
            if convert is not None and isinstance(value, (list, tuple)):
                value = [convert(v) for v in value]
            if _base_type(hints[field.name])[0] is Path and isinstance(value, str):
                value = Path(value)
            setattr(self, field.name, value)
            problem = _problem(field, value, hints[field.name])
            if problem:
                raise DistillError(f"{flag_of(field)} {problem}")

    def as_record(self) -> dict:
        """JSON-able settings, for the artefact's config.json."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def settings_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields of ``cls``, each with its full metadata (an overridden default keeps the help
    and bounds of the class that declared the setting)."""
    declared: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        for field in getattr(base, "__dataclass_fields__", {}).values():
            if field.metadata.get("help") is not None:
                declared[field.name] = field.metadata
    out = []
    for field in dataclasses.fields(cls):
        if field.metadata.get("inherit") or field.metadata.get("help") is None:
            if field.name not in declared:
                raise TypeError(f"{cls.__name__}.{field.name} has no help text: declare it with setting()")
            field.metadata = types.MappingProxyType(dict(declared[field.name]))
        out.append(field)
    return tuple(out)


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _problem(field: dataclasses.Field, value: Any, hint: Any) -> str | None:
    """Why ``value`` is not a valid value of ``field``, or None."""
    kind, optional = _base_type(hint)
    if value is None:
        return None if optional else "is required"
    listed = typing.get_origin(kind) is list
    item = typing.get_args(kind)[0] if listed else kind
    for one in value if listed else [value]:
        problem = _item_problem(field.metadata, item, one)
        if problem:
            return problem
    return None


_BOUNDS = (
    ("min", lambda v, b: v >= b, "at least"),
    ("max", lambda v, b: v <= b, "at most"),
    ("above", lambda v, b: v > b, "above"),
    ("below", lambda v, b: v < b, "below"),
)


def _range_words(meta: typing.Mapping) -> str:
    """'lie in [0, 1)', 'be at least 1', ...: the bounds of a setting in words."""
    low = ("[", meta["min"]) if meta.get("min") is not None else ("(", meta.get("above"))
    high = ("]", meta["max"]) if meta.get("max") is not None else (")", meta.get("below"))
    if low[1] is not None and high[1] is not None:
        return f"lie in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    return next(f"be {words} {meta[name]:g}" for name, _, words in _BOUNDS if meta.get(name) is not None)


def _number_problem(meta: typing.Mapping, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if not all(holds(value, meta[name]) for name, holds, _ in _BOUNDS if meta.get(name) is not None):
        return f"must {_range_words(meta)}, got {value:g}"
    return None


def _item_problem(meta: typing.Mapping, item: Any, value: Any) -> str | None:
    if typing.get_origin(item) is Literal:
        choices = typing.get_args(item)
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}, got {value!r}"
    if item in (int, float):
        return _number_problem(meta, value)
    if meta.get("pattern") and isinstance(value, str) and not re.fullmatch(meta["pattern"][0], value):
        return f"must be {meta['pattern'][1]}, got {value!r}"
    return None


# ---- the command line -------------------------------------------------------------------------


def command_options(cls: type[Settings], skip: tuple[str, ...] = ()) -> Callable:
    """Decorate a click command with an option per setting of ``cls`` (and ``--config``); the
    command is then called with the settings object: ``def command(settings: cls, **rest)``, where
    ``rest`` holds the command's own click parameters that are not settings (e.g. a mode flag).
    ``skip``: fields the command does not expose (they keep their defaults)."""
    import click

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def run(**values: Any) -> Any:
            values.pop("config", None)
            built = {}
            for field in settings_fields(cls):
                if field.name in values:
                    value = values.pop(field.name)
                    built[field.name] = list(value) if isinstance(value, tuple) else value
            return command(cls(**built), **values)

        for field in reversed(_help_order(cls)):
            if field.name not in skip:
                run = _click_param(field, _hints(cls)[field.name])(run)
        return click.option(
            "--config",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            is_eager=True,
            expose_value=True,
            callback=functools.partial(_read_config_file, cls),
            help="A TOML file of settings (the names of the options below, e.g. `epochs = 30`); options given "
            "on the command line override it.",
        )(run)

    return decorate


def _help_order(cls: type[Settings]) -> list[dataclasses.Field]:
    """Required settings, then the command's own, then those it shares with other commands."""
    own = {name for name, f in vars(cls).get("__dataclass_fields__", {}).items() if not f.metadata.get("inherit")}
    own -= {f.name for base in cls.__mro__[1:] for f in getattr(base, "__dataclass_fields__", {}).values()}
    fields = settings_fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return [
        *required,
        *(f for f in fields if f.name in own and f not in required),
        *(f for f in fields if f.name not in own and f not in required),
    ]


def _click_param(field: dataclasses.Field, hint: Any) -> Callable:
    import click

    meta = field.metadata
    kind, _ = _base_type(hint)
    listed = typing.get_origin(kind) is list
    item = typing.get_args(kind)[0] if listed else kind
    if field.default is not dataclasses.MISSING:
        initial = field.default
    elif field.default_factory is not dataclasses.MISSING:
        initial = field.default_factory()
    else:
        initial = None
    required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    if meta["convert"] is not None:
        click_type = str
    elif typing.get_origin(item) is Literal:
        click_type = click.Choice([str(v) for v in typing.get_args(item)])
    elif item is Path or meta["exists"]:
        click_type = click.Path(exists=meta["exists"], path_type=Path if item is Path else None)
    else:
        click_type = item
    if meta["argument"]:
        return click.argument(field.name, type=click_type, required=required)
    options: dict[str, Any] = {"help": meta["help"], "metavar": meta["metavar"]}
    if listed and meta["comma"]:
        options |= {"type": _comma_list(item), "default": ",".join(map(str, initial or [])), "show_default": True}
    elif listed:
        options |= {
            "type": click_type,
            "multiple": True,
            "default": tuple(initial or ()),
            "show_default": bool(initial),
        }
    elif item is bool:
        name = flag_of(field)
        if not meta["on_off"]:
            return click.option(name, field.name, is_flag=True, default=initial, help=meta["help"])
        return click.option(
            f"{name}/--no-{name[2:]}", field.name, default=initial, show_default=True, help=meta["help"]
        )
    else:
        options |= {"type": click_type, "default": initial, "show_default": initial is not None, "required": required}
    return click.option(flag_of(field), field.name, **options)


def _comma_list(item: type) -> Any:
    """A click type: ``a,b,c`` -> a list of ``item`` (choices are checked with the other settings)."""
    import click

    parse = item if item in (int, float) else str

    class CommaList(click.ParamType):
        name = f"{parse.__name__},..."

        def convert(self, value: Any, param: Any, ctx: Any) -> list:
            if isinstance(value, list):
                return value
            try:
                return [parse(part.strip()) for part in str(value).split(",") if part.strip()]
            except ValueError:
                self.fail(f"expected comma-separated {parse.__name__} values, got {value!r}", param, ctx)

    return CommaList()


def _read_config_file(cls: type[Settings], ctx: Any, _param: Any, path: Path | None) -> Path | None:
    """Eager ``--config``: the file's values become the options' defaults, so flags override them."""
    if path is None:
        return None
    values = read_toml(path, cls)
    fields = {field.name: field for field in settings_fields(cls)}
    for name, value in values.items():
        if fields[name].metadata["comma"] and isinstance(value, list):
            values[name] = ",".join(map(str, value))
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


def read_toml(path: Path, cls: type[Settings]) -> dict[str, Any]:
    """The settings a TOML file gives for ``cls``: keys are field names, with ``-`` or ``_``, or an
    option's own name (``T``). Unknown keys and a malformed file are refused, naming the file."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DistillError(f"{path}: not a valid TOML file ({err})") from None
    values = setting_names(cls, raw, str(path))
    for name, value in values.items():
        field = next(f for f in settings_fields(cls) if f.name == name)
        problem = _problem(field, value, _hints(cls)[name]) if field.metadata["convert"] is None else None
        if problem:
            raise DistillError(f"{path}: {name} {problem}")
    return values


def setting_names(cls: type[Settings], raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` keyed by field name: a key may be a field name with ``-`` or ``_``, or an option's
    own name (``T`` for ``--T``). An unknown key is refused, naming ``where``."""
    names = {}
    for field in settings_fields(cls):
        names[field.name] = field.name
        names[flag_of(field).lstrip("-").replace("-", "_")] = field.name
    values = {}
    for key, value in raw.items():
        name = names.get(key.replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(f.name for f in settings_fields(cls)))
            raise DistillError(f"{where}: unknown setting {key!r} (known: {known})")
        values[name] = value
    return values


# ---- what every trainer has ---------------------------------------------------------------------

DEVICE_PATTERN = (r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N")


@dataclasses.dataclass(kw_only=True)
class DeviceSettings(Settings):
    """Where torch computes: every command that runs a model has these."""

    device: str = setting("auto", pattern=DEVICE_PATTERN, help="cpu, cuda, cuda:N, or auto (CUDA when present).")
    threads: int = setting(
        0,
        min=0,
        help="CPU threads torch may use (0: its default, one per core). Give 1 where another job shares the "
        "machine: threads that wait on a busy core slow every step.",
    )


@dataclasses.dataclass(kw_only=True)
class RunSettings(DeviceSettings):
    """Settings every trainer has; a trainer's settings extend them and may change their defaults."""

    out: Path = setting(help="Directory to write (the model, its log and its checkpoint).")
    epochs: int = setting(10, min=1, help="Passes over the training data.")
    batch_size: int = setting(32, min=1, help="Sentences per batch.")
    lr: float = setting(1e-3, min=0, help="Learning rate (0: the weights stay as they start).")
    max_grad_norm: float = setting(1.0, above=0, help="Gradients are clipped to this norm.")
    patience: int = setting(3, min=0, help="Stop after this many epochs without dev improvement (0: never).")
    seed: int = setting(
        13, help="Seed of every random choice: the same seed, machine and --threads give the same model."
    )
    eval_batch_size: int = setting(64, min=1, help="Sentences per batch when scoring the dev and test sets.")
    checkpoint_every: int = setting(
        200, min=0, help="Also checkpoint every N batches (0: at epoch ends only); a kill loses at most that much."
    )
    resume: bool = setting(False, on_off=False, help="Continue an interrupted run in --out from its last checkpoint.")
    overwrite: bool = setting(False, on_off=False, help="Discard an earlier run in --out and start again.")
