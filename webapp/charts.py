"""Charts and tables of the Streamlit pages, built from the pipeline's records (no Streamlit calls here)."""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from deep_emotion import FacePrediction, ModelView, list_explainers
from deep_emotion.describe import method_title


def probability_chart(view: ModelView, rows: int) -> dict:
    """Bars of the classes' probabilities, the top one red; `rows` bars' height for every model, so that charts of
    7- and 8-class models line up. A Vega-Lite spec written out: built with Altair, its validation cost the server
    more CPU per upload than all the rest of the page's drawing."""
    return {
        "data": {"values": [{"class": c, "probability": float(p)} for c, p in view.probabilities.items()]},
        "mark": "bar",
        "height": 22 * rows,
        "encoding": {
            "x": {
                "field": "probability",
                "type": "quantitative",
                "scale": {"domain": [0, 1]},
                "title": None,
                "axis": {"format": "%", "values": [0, 0.5, 1]},
            },
            "y": {
                "field": "class",
                "type": "nominal",
                "sort": "-x",
                "title": None,
                "axis": {"labelOverlap": False, "labelLimit": 120},
            },
            "color": {
                "condition": {"test": f"datum['class'] === {json.dumps(view.top)}", "value": "#d62728"},
                "value": "#4c78a8",
            },
            "tooltip": [
                {"field": "class", "type": "nominal"},
                {"field": "probability", "type": "quantitative", "format": ".3f"},
            ],
        },
    }


def summary_table(predictions: list[FacePrediction]) -> pd.DataFrame:
    """Every face (1 = the largest) x every chosen model, and their consensus: the top class and its probability."""
    return pd.DataFrame(
        [
            {
                "face": p.index + 1,
                **{m: f"{p.top(m)} {p.probabilities[m][p.top(m)]:.0%}" for m in p.probabilities},
                **({"consensus": f"{p.consensus_top} {p.consensus[p.consensus_top]:.0%}"} if p.consensus else {}),
            }
            for p in predictions
        ]
    ).set_index("face")


def faithfulness_table(views: list[ModelView]) -> pd.DataFrame:
    """Insertion - deletion AUC of every scored map (rows, by title; the random map last) for every model."""
    scored = [v for v in views if v.faithfulness]
    order = list_explainers() + ["random"]
    rows = sorted({n for v in scored for n in v.faithfulness}, key=lambda n: order.index(n) if n in order else 99)
    titles = [("random map (baseline)" if n == "random" else method_title(n)) for n in rows]
    return pd.DataFrame(
        {v.model: [v.faithfulness.get(n, {}).get("difference") for n in rows] for v in scored}, index=titles
    )


CONFUSION_ELEMENT = (380, 540)  # the element's width and height: a square ~290 px plot with its labels and legend


def confusion_chart(name: str, classes: list[str], confusion) -> alt.Chart:
    """A model's confusion on its test split, each row as shares of its true class."""
    cm = np.asarray(confusion, dtype=float)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    df = pd.DataFrame(
        [
            {"true": classes[i], "predicted": classes[j], "share": rows[i, j], "count": int(cm[i, j])}
            for i in range(len(classes))
            for j in range(len(classes))
        ]
    )
    side = 280  # square cells; the legend below, so that the chart fits half of a desktop page or a phone
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X(
                "predicted:N",
                sort=classes,
                title="predicted class",
                axis=alt.Axis(labelOverlap=False, labelLimit=200, labelAngle=-45),
            ),
            y=alt.Y(
                "true:N", sort=classes, title="true class (rows)", axis=alt.Axis(labelOverlap=False, labelLimit=200)
            ),
            color=alt.Color(
                "share:Q",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                title="share of its row",
                legend=alt.Legend(orient="bottom", gradientLength=side - 60),
            ),
            tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".2f")],
        )
        .properties(
            width=side,
            height=side,
            title=alt.TitleParams(f"{name}: confusion on its test split", subtitle="each row: shares of a true class"),
        )
    )


def timeline_charts(result, model: str, at: float) -> dict[int, alt.LayerChart]:
    """Per face of a `VideoAnalysis`: every class's probability stacked over time, the top class as a band above
    it, and a rule at `at` (the frame explained below)."""
    classes = result.classes[model]
    end = max(result.info.seconds or 0.0, max(r.time for r in result.rows) + 1 / result.fps)
    x = alt.X("time:Q", title="time (s)", scale=alt.Scale(domain=[0, end], nice=False))
    colour = alt.Scale(domain=classes, scheme="tableau10")
    rule = alt.Chart(pd.DataFrame({"time": [at]})).mark_rule(color="black", strokeWidth=2).encode(x="time:Q")
    charts = {}
    step = 1 / result.fps
    for face in result.faces():
        rows = [r for r in result.rows if r.face == face]
        # each sample holds until the face's next sample (at most one step later: a gap shows as a gap)
        ends = [min(b.time, a.time + 1.5 * step) for a, b in zip(rows, rows[1:])] + [rows[-1].time + step]
        probs = pd.DataFrame(
            [
                {"time": t, "class": c, "probability": float(p)}
                for r, e in zip(rows, ends)
                for t in (r.time, e - 1e-3)  # a step, stacked per x
                for c, p in zip(classes, r.probabilities[model])
            ]
        )
        tops = pd.DataFrame(
            [
                {
                    "time": r.time,
                    "end": e,
                    "band": 1.04,
                    "top": 1.12,
                    "class": classes[int(np.argmax(r.probabilities[model]))],
                }
                for r, e in zip(rows, ends)
            ]
        )
        area = (
            alt.Chart(probs)
            .mark_area(interpolate="linear")
            .encode(
                x=x,
                y=alt.Y(
                    "probability:Q",
                    stack="normalize",
                    title="probability",
                    axis=alt.Axis(format="%", values=[0, 0.5, 1]),
                    scale=alt.Scale(domain=[0, 1.12]),
                ),
                color=alt.Color(
                    "class:N",
                    scale=colour,
                    title="class; the band above: the top one",
                    legend=alt.Legend(orient="bottom", columns=4, titleLimit=400),
                ),
                order=alt.Order("class:N"),
                tooltip=[alt.Tooltip("time:Q", format=".2f"), "class", alt.Tooltip("probability:Q", format=".2f")],
            )
        )
        band = (
            alt.Chart(tops)
            .mark_rect()
            .encode(
                x=x,
                x2="end:Q",
                y="band:Q",
                y2="top:Q",
                color=alt.Color("class:N", scale=colour),
                tooltip=[alt.Tooltip("time:Q", format=".2f"), alt.Tooltip("class:N", title="top class")],
            )
        )
        charts[face] = alt.layer(area.properties(height=150), band, rule).properties(height=150, title=f"face {face}")
    return charts
