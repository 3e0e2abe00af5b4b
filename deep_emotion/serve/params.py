"""Shareable links: the URL parameters of the front ends (?window=&stride=&models=&methods=&target=), read,
checked against a pipeline and written back, and the vocabulary of the controls they seed (the maps on offer,
the occlusion cost). Imports no UI library.

    values, errors = parse_query({"window": "12", "models": "fer2013,ferplus"})
    errors += check_query(values, pipe)      # the pipeline's own checks: `Pipeline.choose`, `AnalysisOptions.check`
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deep_emotion.results import AnalysisOptions

if TYPE_CHECKING:
    from deep_emotion.pipeline import Pipeline

QUERY_KEYS = ("window", "stride", "models", "methods", "target")


def parse_query(q: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The parameters of a URL's query as values (window and stride as ints, models and methods as lists) and
    what could not be read ('window='eight' is not a whole number'). Other keys are ignored."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for key in ("window", "stride"):
        if key in q:
            try:
                values[key] = int(q[key])
            except (TypeError, ValueError):
                errors.append(f"{key}={q[key]!r} is not a whole number")
    for key in ("models", "methods"):
        if key in q:
            values[key] = [m.strip() for m in str(q[key]).split(",") if m.strip()]
    if "target" in q:
        values["target"] = q["target"]
    return values, errors


def stride_limit(side: int) -> int:
    """The largest stride a control offers: half the input side (a larger one leaves most of the face unseen)."""
    return max(1, side // 2)


def check_query(values: Mapping[str, Any], pipe: Pipeline) -> list[str]:
    """What is wrong with parsed parameters for this pipeline, one message per problem: models as
    `Pipeline.choose` checks them, window, stride and maps as `AnalysisOptions.check` does at the pipeline's input
    size, a stride beyond what the controls offer, a target no model knows."""
    errors = []
    if values.get("models"):
        errors += _problem(lambda: pipe.choose(values["models"]))
    defaults = AnalysisOptions()
    options = AnalysisOptions(
        tuple(values.get("methods") or defaults.methods),
        values.get("window", defaults.window),
        values.get("stride", defaults.stride),
    )
    errors += _problem(lambda: options.check(pipe.input_size))
    limit = stride_limit(pipe.input_size)
    if options.stride > limit:
        errors.append(f"stride {options.stride} is beyond the stride control's 1..{limit}")
    if "target" in values and values["target"] not in pipe.classes:
        errors.append(f"target {values['target']!r} is not a class of the bundled models ({', '.join(pipe.classes)})")
    return errors


def check_choice(models: Sequence[str], methods: Sequence[str], pipe: Pipeline) -> list[str]:
    """What is wrong with the chosen models and maps ('choose at least one model'), one message per problem."""
    return _problem(lambda: pipe.choose(list(models))) + _problem(
        lambda: AnalysisOptions(tuple(methods)).check(pipe.input_size)
    )


def to_query(
    models: Sequence[str], methods: Sequence[str], window: int, stride: int, target: str | None = None
) -> dict[str, str]:
    """The controls as URL parameters (the inverse of `parse_query`); no target: each model's own top class."""
    query = {"window": str(window), "stride": str(stride), "models": ",".join(models), "methods": ",".join(methods)}
    if target:
        query["target"] = target
    return query


def method_titles() -> dict[str, str]:
    """Every registered explanation method and its title, in the registry's order ('gradcam': 'Grad-CAM')."""
    from deep_emotion.explain import EXPLAINERS  # (importing the package registers every method)

    return {name: m.title for name, m in EXPLAINERS.items()}


def method_about(method: str) -> str:
    """One sentence on what the method's map shows, for users."""
    from deep_emotion.explain import EXPLAINERS

    return EXPLAINERS[method].about if method in EXPLAINERS else ""


def is_occlusion(method: str) -> bool:
    """Whether the method slides an occluding window over the face (its cost grows with window and stride)."""
    return method.startswith("occlusion") or method == "captum-occlusion"


def occlusion_passes(side: int, window: int, stride: int, methods: Sequence[str] = ("occlusion-flip",)) -> int:
    """Occluded forward passes per face and model that `methods` cost at these settings (0: no occlusion map;
    the occlusion maps share one set of passes)."""
    if not any(is_occlusion(m) for m in methods):
        return 0
    from deep_emotion.explain import n_windows

    return n_windows(side, window, stride)


def _problem(check: Callable[[], Any]) -> list[str]:
    """The ValueError's message of `check()` as a one-item list; none when it passes."""
    try:
        check()
    except ValueError as e:
        return [str(e)]
    return []
