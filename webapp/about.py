"""The About expander: the maps explained, and on request each model's card (test accuracy, confusion matrix,
reliability diagram), read from the pipeline's typed `ModelCard`s."""

from __future__ import annotations

import charts  # beside this file
import streamlit as st

from deep_emotion.models.card import checkpoint_dir

MAPS = (
    "- **STN view**: the spatial transformer's affine warp of the face, what the rest of the network sees; "
    "**STN attention** outlines the part of the input it samples.\n"
    "- **Occlusion (paper, flip)**: a black window×window square slides over the face with the chosen stride; "
    "each pixel counts the positions whose occlusion changes the predicted label (Minaee & Abdolrashidi, "
    "Fig. 12). **(drop)**: the average fall of the class's probability over the windows covering each pixel.\n"
    "- **Captum Occlusion**: the same sliding occlusion on the softmax output; it equals the *drop* map by "
    "construction, and it is signed: blue regions *raise* the class's probability when hidden.\n"
    "- **Integrated Gradients** (50 steps from a black face), **SmoothGrad** (20 noisy copies) and "
    "**Grad-CAM** (the last convolution, carried back through the STN) are Captum's gradient methods.\n"
    "- **Facial regions**: eyes, brows, nose, mouth (placed from the face's landmarks) and the rest, each "
    "blurred away in turn.\n"
    "- Red is evidence for the class, blue against; unsigned maps run from black (0) to yellow."
)
PROBABILITIES = (
    "- **Probabilities** are corrected as each model card says, each step kept only where it helped on "
    "validation faces: averaged with the mirrored face, shifted against the training set's class "
    "frequencies (so that rare expressions such as disgust are not drowned), and tempered so that a 70 % "
    "answer is right about 70 % of the time."
)


def card_line(name: str, card) -> str:
    """'**fer2013** — fer2013, test accuracy **59.7%** on 3589 images (protocol: ...)', with the calibrated
    figures where the card has them."""
    test = card.metrics["test"]
    line = (
        f"**{name}** — {card.dataset}, test accuracy **{test.accuracy:.1%}** on {test.n} images "
        f"(protocol: {card.protocol_note or card.protocol})"
    )
    shipped = ((card.posthoc or {}).get("metrics") or {}).get("test", {}).get("posthoc")
    if shipped and test.balanced_accuracy is not None:
        line += (
            f"; as calibrated here: accuracy {shipped['accuracy']:.1%}, balanced accuracy "
            f"{shipped['balanced_accuracy']:.1%}, against {test.balanced_accuracy:.1%} for the network alone"
        )
    return line


def expander(pipe) -> None:
    with st.expander("About the models and the maps"):
        st.markdown(MAPS)
        st.markdown(PROBABILITIES)
        if not st.toggle("Each model's accuracy, confusion matrix and reliability", key="about_models"):
            return  # built only when asked: seven charts and pictures on every rerun cost the server
        cards = pipe.cards
        for name in pipe.names:
            card = cards[name]
            if "test" not in card.metrics:
                st.markdown(f"**{name}** — {card.dataset}: its card has no test figures.")
                continue
            st.markdown(card_line(name, card))
            a, b = st.columns(2)
            if card.confusion:
                width, height = charts.CONFUSION_ELEMENT  # Streamlit fits the whole chart into the element
                a.altair_chart(
                    charts.confusion_chart(name, list(card.classes), card.confusion), width=width, height=height
                )
            reliability = checkpoint_dir() / f"{name}_reliability.png"
            if reliability.is_file():
                b.image(
                    str(reliability),
                    caption=f"{name}: reliability (are 70 % answers right 70 % of the time?)",
                    width="stretch",
                )
