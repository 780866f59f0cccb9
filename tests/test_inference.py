"""The generation engine (`temporal_rl.generation`) on the tiny model and a few synthetic clips.

The tiny model's random weights answer every prompt with the same newlines, which would make "batched equals
unbatched" hold by accident; the fixture model has its weights shaken (seeded) so that greedy completions differ
between records.
"""

import re

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import temporal_rl.generation as inference
from data_tools.synth import generate_dataset
from temporal_rl.data import read_records
from temporal_rl.generation import (
    GenerationOptions,
    PromptError,
    PromptOptions,
    completion_lengths,
    generate_batch,
    iter_generations,
    left_pad_batch,
    prepare_prompt,
    vision_token_ids,
)
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.sampling import FrameSampling

NATIVE_56 = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("inference_data")
    generate_dataset("grounding", "val", 3, "inference-test", out / "g", workers=1, progress=False)
    generate_dataset("mcq", "val", 3, "inference-test", out / "m", workers=1, progress=False)
    return read_records(out / "g" / "data.jsonl") + read_records(out / "m" / "data.jsonl")


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


@pytest.fixture
def cache(tmp_path):
    return FrameCache(tmp_path / "frames")


class CountingProcessor:
    """Delegates to a processor and counts its __call__s (the prompt tokenisation and video processing)."""

    def __init__(self, processor):
        self.processor, self.calls = processor, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.processor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.processor, name)

    @property
    def __class__(self):  # passes as the processor it wraps (its model family is looked up by class)
        return type(self.processor)


def test_k_samples_per_record_from_one_processor_call_and_one_video_load(
    model, processor, records, cache, monkeypatch
):
    loads = []
    real_load_video = inference.load_video
    monkeypatch.setattr(
        inference, "load_video", lambda path, *a, **kw: loads.append(path) or real_load_video(path, *a, **kw)
    )
    generate_calls = []
    real_generate = model.generate
    monkeypatch.setattr(
        model, "generate", lambda **kw: generate_calls.append(kw["input_ids"].shape) or real_generate(**kw)
    )
    counting = CountingProcessor(processor)
    options = GenerationOptions(max_new_tokens=6, do_sample=True, num_return_sequences=4, batch_size=2, seed=0)

    generations = list(iter_generations(model, counting, records[:3], NATIVE_56, cache, generation=options))

    assert counting.calls == 3 and len(loads) == 3  # once per record, not once per sample
    assert [shape[0] for shape in generate_calls] == [2, 1]  # records per generate call; generate expands to K
    assert [g.record_id for g in generations] == [r["id"] for r in records[:3]]
    for generation in generations:
        assert len(generation.completions) == len(generation.completion_ids) == 4
        assert generation.completion_tokens == [len(ids) for ids in generation.completion_ids]
        assert generation.prompt_tokens > 100  # the video's tokens are in the prompt
    assert any(len(set(g.completions)) > 1 for g in generations)  # sampled, not 4 copies

    again = list(iter_generations(model, processor, records[:3], NATIVE_56, cache, generation=options))
    assert [g.completions for g in again] == [g.completions for g in generations]  # the seed repeats a run


def test_batched_greedy_equals_unbatched(model, processor, records, cache):
    options = dict(max_new_tokens=8)
    one_by_one = list(
        iter_generations(model, processor, records, NATIVE_56, cache, generation=GenerationOptions(**options))
    )
    batched = list(
        iter_generations(
            model, processor, records, NATIVE_56, cache, generation=GenerationOptions(**options, batch_size=4)
        )
    )
    assert len({g.prompt_tokens for g in one_by_one}) > 1  # prompts differ in length: the batch is left-padded
    assert len({tuple(g.completion_ids[0]) for g in one_by_one}) > 2  # completions differ between records
    assert [g.completion_ids for g in batched] == [g.completion_ids for g in one_by_one]
    assert [g.completions for g in batched] == [g.completions for g in one_by_one]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in one_by_one]


def test_vision_tokens_are_never_generated_even_when_their_logits_dominate(model, processor, records, cache):
    vision_ids = vision_token_ids(processor)
    assert len(vision_ids) == 4

    def force_vision_tokens(module, inputs, output):
        output = output.clone()
        output[..., vision_ids] += 1e4
        return output

    handle = model.lm_head.register_forward_hook(force_vision_tokens)
    try:
        prepared = prepare_prompt(records[0], processor, NATIVE_56, cache)
        with torch.no_grad():
            logits = model(**prepared.inputs).logits[0, -1]
        assert int(logits.argmax()) in vision_ids  # without suppression the model would pick one

        for options in (
            GenerationOptions(max_new_tokens=6),
            GenerationOptions(max_new_tokens=6, do_sample=True, temperature=2.0, num_return_sequences=3),
        ):
            for generation in generate_batch(model, processor, [prepared], options):
                for ids in generation.completion_ids:
                    assert len(ids) == 6 and not set(ids) & set(vision_ids)
    finally:
        handle.remove()


def test_a_bad_record_raises_a_prompt_error_the_caller_can_skip(model, processor, records, cache, tmp_path):
    missing = {**records[0], "id": "no-video", "video": str(tmp_path / "absent.mp4")}
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    undecodable = {**records[1], "id": "broken-video", "video": str(broken)}
    no_options = {**records[3], "id": "no-options", "options": None}

    with pytest.raises(PromptError, match=r"record 'no-video': .*absent.mp4: video file not found"):
        prepare_prompt(missing, processor, NATIVE_56, cache)
    with pytest.raises(PromptError, match=r"record 'broken-video': .*broken.mp4: not a readable video file"):
        prepare_prompt(undecodable, processor, NATIVE_56, cache)
    with pytest.raises(PromptError, match=r"record 'no-options': .*needs its options"):
        prepare_prompt(no_options, processor, NATIVE_56, cache)
    with pytest.raises(PromptError, match="field 'video' is missing"):
        prepare_prompt({**records[0], "video": ""}, processor, NATIVE_56, cache)

    errors = []
    stream = [records[0], missing, records[1], undecodable, no_options, records[2]]
    options = GenerationOptions(max_new_tokens=2, batch_size=2)
    generations = list(
        iter_generations(
            model, processor, stream, NATIVE_56, cache, generation=options, on_error=lambda r, e: errors.append(e)
        )
    )
    assert [g.record_id for g in generations] == [r["id"] for r in records[:3]]
    assert [e.record_id for e in errors] == ["no-video", "broken-video", "no-options"]
    with pytest.raises(PromptError, match="no-video"):
        list(iter_generations(model, processor, stream, NATIVE_56, cache, generation=options))


def test_prompt_options_reach_the_prompt(processor, records, cache):
    plain = prepare_prompt(records[0], processor, NATIVE_56, cache, PromptOptions(span_format="plain"))
    think = prepare_prompt(records[0], processor, NATIVE_56, cache, PromptOptions(think=True))
    text_plain = processor.tokenizer.decode(plain.inputs["input_ids"][0])
    text_think = processor.tokenizer.decode(think.inputs["input_ids"][0])
    assert "<answer>5.5 - 9.0</answer>" in text_plain and "<think>" not in text_plain
    assert "<think>" in text_think and '"start_time"' in text_think


def test_left_pad_batch_pads_token_tensors_and_concatenates_the_rest():
    a = {
        "input_ids": torch.tensor([[5, 6, 7]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
        "pixel_values_videos": torch.ones(4, 2),
        "video_grid_thw": torch.tensor([[1, 2, 2]]),
    }
    b = {
        "input_ids": torch.tensor([[8]]),
        "attention_mask": torch.ones(1, 1, dtype=torch.long),
        "pixel_values_videos": torch.zeros(8, 2),
        "video_grid_thw": torch.tensor([[2, 2, 2]]),
    }
    batch = left_pad_batch([a, b], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["pixel_values_videos"].shape == (12, 2) and batch["pixel_values_videos"][:4].eq(1).all()
    assert batch["video_grid_thw"].tolist() == [[1, 2, 2], [2, 2, 2]]


def test_completion_lengths_stop_at_the_first_eos():
    generated = torch.tensor([[4, 9, 0, 0], [4, 4, 4, 4], [7, 3, 9, 0]])
    assert completion_lengths(generated, eos_token_ids=[9, 7]) == [2, 4, 1]
    assert completion_lengths(torch.zeros(2, 0, dtype=torch.long), eos_token_ids=[9]) == [0, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_return_sequences=4), "needs do_sample=True"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(do_sample=True, temperature=0.0), "temperature must be > 0"),
        (dict(top_p=0.0), "top_p must be in"),
    ],
)
def test_generation_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationOptions(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generation_follows_the_model_to_cuda(model, processor, records, cache):
    import copy

    options = GenerationOptions(max_new_tokens=6, batch_size=3)
    on_cpu = list(iter_generations(model, processor, records[:3], NATIVE_56, cache, generation=options))
    on_cuda = list(
        iter_generations(copy.deepcopy(model).to("cuda"), processor, records[:3], NATIVE_56, cache, generation=options)
    )
    assert [g.completion_tokens for g in on_cuda] == [g.completion_tokens for g in on_cpu]
    assert all(not set(ids) & set(vision_token_ids(processor)) for g in on_cuda for ids in g.completion_ids)


def test_an_oversized_prompt_is_skipped_and_listed_and_its_batch_is_unchanged(model, processor, records, cache):
    """A 1 MB question used to make its batch try to allocate about 1 TB (evaluation) or stall the filter for ten
    minutes: the prompt-length limit skips it with its length, and the records batched beside it come out as they
    do without it."""
    huge = {**records[1], "id": "huge", "question": "When does it happen? " * 50_000}  # ~1 MB
    exact = prepare_prompt(records[0], processor, NATIVE_56, cache).num_tokens
    assert prepare_prompt(records[0], processor, NATIVE_56, cache, max_prompt_tokens=exact).num_tokens == exact
    with pytest.raises(PromptError, match=rf"prompt too long: {exact} tokens \(video included\), over .*={exact - 1}"):
        prepare_prompt(records[0], processor, NATIVE_56, cache, max_prompt_tokens=exact - 1)

    options = GenerationOptions(max_new_tokens=4, batch_size=3)
    errors = []
    with_huge = list(
        iter_generations(
            model, processor, [records[0], huge, records[2], records[3]], NATIVE_56, cache, generation=options,
            on_error=lambda r, e: errors.append(e),
        )
    )  # fmt: skip
    alone = list(iter_generations(model, processor, [records[0], records[2], records[3]], NATIVE_56, cache,
                                  generation=options))  # fmt: skip
    assert [e.record_id for e in errors] == ["huge"]
    assert re.fullmatch(r"prompt too long: at least \d+ tokens in its question and options alone, over "
                        r"max_prompt_tokens=16384", errors[0].reason)  # fmt: skip
    # the bound it gives is a real count: the tokenizer's own on the prefix it read (16 characters a token)
    prefix = huge["question"][: 16 * 16384]
    assert int(errors[0].reason.split()[5]) == len(processor.tokenizer(prefix, add_special_tokens=False).input_ids) - 1
    assert [(g.record_id, g.completion_ids) for g in with_huge] == [(g.record_id, g.completion_ids) for g in alone]
    with pytest.raises(ValueError, match="max_prompt_tokens must be a positive integer or None"):
        GenerationOptions(max_prompt_tokens=0)


def test_a_duration_that_disagrees_with_the_video_is_refused_naming_both(processor, records, cache):
    """1e12 s on a 12 s clip used to pass: the decoded stream's length is the check (frames / fps, read here from
    the container independently)."""
    import av

    from temporal_rl.data import RecordError
    from temporal_rl.sft import PathFrames

    with av.open(records[0]["video"]) as container:
        stream = container.streams.video[0]
        real = stream.frames / float(stream.average_rate)
    assert abs(records[0]["duration"] - real) < 0.5  # the synthetic records are right to begin with
    wrong = {**records[0], "id": "wrong-duration", "duration": real * 3 + 5}
    with pytest.raises(PromptError, match=rf"'wrong-duration': the record says .* but its video lasts {real:.2f} s"):
        prepare_prompt(wrong, processor, NATIVE_56, cache)
    prepare_prompt({**records[0], "duration": real + 1.5}, processor, NATIVE_56, cache)  # within the tolerance
    with pytest.raises(RecordError, match=r"record 'wrong-duration': the record says"):
        PathFrames(NATIVE_56, cache)(wrong)
