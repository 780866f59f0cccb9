"""The frame selector's prompt (ViaRL), and the frames an answer model gets from its output.

The selector sees T candidate frames with their index drawn on each (`temporal_rl.viarl.candidates`) and the question
without its options, and answers `<think>what to look for</think><index>3, 17, 42, ...</index>`.
`build_selector_messages` words the prompt; `fallback_indices` turns the parsed list into the frames the answer model
sees (the list when valid, else uniform indices, as ViaRL). The output format, its parser and the rule-based rewards
are `temporal_rl.rewards.selector`'s (registered with the other rewards, importable without the video stack).

This module owns the selector's wording and the fallback. It does not draw frames (`temporal_rl.viarl.candidates`)
nor run models.
"""

from __future__ import annotations

from temporal_rl.prompts import user_content
from temporal_rl.rewards.selector import is_valid_selection
from temporal_rl.video.sampling import uniform_indices

SELECTOR_PROMPT = (
    "You select the video frames that best answer a question about a video.\n"
    "The video has {num_candidates} frames. The {label} of each frame is its index, an integer from 0 to "
    "{last_index}.\n"
    "Choose the {num_select} frames that help most to answer the question:\n"
    "1. Find the keywords of the question: the entities (people, objects), the time, the place and the action it "
    "mentions.\n"
    "2. Describe what the frames you need look like, based on those keywords and on the video.\n"
    "3. List the indices of the {num_select} frames that show it.\n"
    "Write your reasoning inside <think> </think> tags, then exactly {num_select} different frame indices, separated "
    "by commas, inside <index> </index> tags, in this format: "
    "<think>your reasoning</think><index>index_1, index_2, ..., index_{num_select}</index>"
)
SELECTOR_USER_PROMPT = 'The question is: "{question}"'
# How the prompt names the drawn index; matches `temporal_rl.video.labels.LabelStyle()` (change both together).
DEFAULT_LABEL_DESCRIPTION = "red number in the bottom-right corner"


def selector_system_prompt(num_candidates: int, num_select: int, label: str = DEFAULT_LABEL_DESCRIPTION) -> str:
    """`SELECTOR_PROMPT` for T candidates and N frames to select; `label` says where the index is drawn."""
    return SELECTOR_PROMPT.format(
        num_candidates=num_candidates, last_index=num_candidates - 1, num_select=num_select, label=label
    )


def build_selector_messages(
    record: dict,
    num_candidates: int,
    num_select: int,
    *,
    video: str | None = None,
    label: str = DEFAULT_LABEL_DESCRIPTION,
    video_position: str = "first",
) -> list[dict]:
    """The selector's chat messages for a canonical record: the system prompt, then the video and the question (or
    the question and the video: `video_position`).

    The question is shown without its options (ViaRL): the selector looks for evidence, the answer model chooses.

    Args:
        record: a canonical record (`temporal_rl.data`); its `question` is used, its `options` are not.
        num_candidates: T, the number of labelled frames in the video.
        num_select: N, the number of indices to output.
        video: the video path to carry in the video block, for a trainer that loads the frames itself.
        label: where and how the index is drawn on the frames, as the prompt says it (see `LabelStyle`).
        video_position: `"first"` (the video, then the question; ViaRL) or `"last"` (the question, then the video: a
            tiny random model learned to read frames only in this order, docs/measurements.md).

    Returns:
        `[system, user]`, the user content `[{"type": "video"}, {"type": "text", "text": ...}]` (reversed for
        `video_position="last"`); no value is None.

    Example:
        ```python
        >>> record = {"question": "What colour is the star?", "options": ["red", "blue"]}
        >>> build_selector_messages(record, 128, 8)[1]["content"][1]["text"]
        'The question is: "What colour is the star?"'
        ```
    """
    if not isinstance(num_candidates, int) or not isinstance(num_select, int) or not 1 <= num_select <= num_candidates:
        raise ValueError(f"cannot select {num_select!r} of {num_candidates!r} frames")
    question = str(record.get("question") or "").strip()
    if not question:
        raise ValueError(f"record {record.get('id')!r} has no question")
    return [
        {
            "role": "system",
            "content": [{"type": "text", "text": selector_system_prompt(num_candidates, num_select, label)}],
        },
        {
            "role": "user",
            "content": user_content(SELECTOR_USER_PROMPT.format(question=question), video, video_position),
        },
    ]


def fallback_indices(parsed: list[int] | None, num_candidates: int, num_select: int) -> list[int]:
    """The frames the answer model gets: `parsed` if it is a valid selection, else `uniform_indices(T, N)` (ViaRL).

    Example:
        ```python
        >>> fallback_indices([9, 2, 5], 16, 3), fallback_indices([9, 9, 5], 16, 3), fallback_indices(None, 16, 4)
        ([9, 2, 5], [0, 5, 10], [0, 4, 8, 12])
        ```
    """
    if is_valid_selection(parsed, num_candidates, num_select):
        return list(parsed)
    return uniform_indices(num_candidates, num_select)
