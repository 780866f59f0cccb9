"""Frame-selection baselines: uniform, top-k by score, CLIP with controlled similarities, and a tiny real CLIP."""

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from temporal_rl.viarl.candidates import CandidateFrames, select_frames
from temporal_rl.viarl.frame_baselines import ClipFrameScorer, clip_topk_selection, topk_indices, uniform_selection
from temporal_rl.video.sampling import SampledVideo


def make_candidates(num: int, height: int = 28, width: int = 56) -> CandidateFrames:
    """Candidates whose frame i is filled with the value i (so a stub can tell the frames apart)."""
    frames = np.stack([np.full((height, width, 3), i, dtype=np.uint8) for i in range(num)])
    video = SampledVideo(
        frames=frames,
        timestamps=np.arange(num, dtype=np.float64) * 0.5,
        indices=np.arange(num, dtype=np.int64) * 5,
        source_fps=10.0,
        total_frames=num * 5,
        duration=num * 0.5,
        path="synthetic.mp4",
    )
    return CandidateFrames(video=video, selector_frames=frames[:, :28, :28], answer_size=(height, width))


# ----------------------------------------------------------------------------------------------------------------
# Uniform and top-k


def test_uniform_selection():
    assert uniform_selection(128, 8) == [8, 24, 40, 56, 72, 88, 104, 120]
    assert uniform_selection(128, 8, "start") == [0, 16, 32, 48, 64, 80, 96, 112]


@pytest.mark.parametrize(
    ("scores", "k", "expected"),
    [
        ([0.1, 0.9, 0.3, 0.8, 0.5], 2, [1, 3]),
        ([0.1, 0.9, 0.3, 0.8, 0.5], 3, [1, 3, 4]),  # returned in time order, not score order
        ([0.5, 0.5, 0.5, 0.5], 2, [0, 1]),  # ties go to the earlier frame
        ([0.2, 0.7, 0.7, 0.1], 1, [1]),
        ([-1.0, -0.5], 2, [0, 1]),
        (torch.tensor([0.0, 3.0, 1.0]), 1, [1]),
    ],
)
def test_topk_indices(scores, k, expected):
    assert topk_indices(scores, k) == expected


def test_topk_indices_errors():
    with pytest.raises(ValueError, match="top 3 of 2"):
        topk_indices([0.1, 0.2], 3)
    with pytest.raises(ValueError, match="NaN"):
        topk_indices([0.1, float("nan")], 1)


# ----------------------------------------------------------------------------------------------------------------
# CLIP with similarities we control


class StubProcessor:
    """Images -> their fill value as a 1-number 'pixel' tensor; text -> a fixed token."""

    def __init__(self):
        self.image_calls = []

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs):
        if images is not None:
            self.image_calls.append(len(images))
            return {"pixel_values": torch.tensor([[float(image[0, 0, 0])] for image in images])}
        return {"input_ids": torch.tensor([[7]]), "attention_mask": torch.tensor([[1]]), "token_type_ids": None}


class StubClip(torch.nn.Module):
    """Frame i embeds to length_i * (cos a_i, sin a_i) and the text to (2, 0): cosine similarity cos(a_i)."""

    def __init__(self, angles, lengths, wrap_outputs):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.angles, self.lengths, self.wrap = torch.tensor(angles), torch.tensor(lengths), wrap_outputs

    def _out(self, tensor):
        return BaseModelOutputWithPooling(pooler_output=tensor) if self.wrap else tensor

    def get_image_features(self, pixel_values):
        ids = pixel_values[:, 0].long()
        angles, lengths = self.angles[ids], self.lengths[ids]
        return self._out(torch.stack([lengths * angles.cos(), lengths * angles.sin()], dim=1))

    def get_text_features(self, input_ids, attention_mask=None):
        return self._out(torch.tensor([[2.0, 0.0]]).expand(len(input_ids), 2))


@pytest.mark.parametrize("wrap_outputs", [False, True])
def test_clip_topk_with_controlled_similarities(wrap_outputs):
    # Similarities cos(angle): frame 6 (0.0 rad) > frame 2 (0.3) > frame 9 (0.5) > the rest (>= 1.0 rad).
    angles = [1.2, 1.5, 0.3, 2.0, 1.0, 3.0, 0.0, 1.1, 2.5, 0.5]
    lengths = [1.0, 5.0, 0.1, 2.0, 3.0, 1.0, 0.5, 9.0, 1.0, 4.0]  # norms must not matter
    processor = StubProcessor()
    scorer = ClipFrameScorer(StubClip(angles, lengths, wrap_outputs), processor, batch_size=3)
    candidates = make_candidates(10)
    similarities = scorer.similarities(candidates.video.frames, "Which digit was shown?")
    torch.testing.assert_close(similarities, torch.tensor(angles).cos(), rtol=1e-6, atol=1e-6)
    assert processor.image_calls == [3, 3, 3, 1]  # batched
    assert clip_topk_selection(scorer, candidates, "q", 1) == [6]
    assert clip_topk_selection(scorer, candidates, "q", 3) == [2, 6, 9]  # time order
    assert clip_topk_selection(scorer, candidates, "q", 4) == [2, 4, 6, 9]
    selected = select_frames(candidates, clip_topk_selection(scorer, candidates, "q", 3))
    np.testing.assert_array_equal(selected.timestamps, [1.0, 3.0, 4.5])
    with pytest.raises(ValueError, match="no frames"):
        scorer.similarities(candidates.video.frames[:0], "q")


# ----------------------------------------------------------------------------------------------------------------
# A tiny random CLIP, built offline, saved and reloaded


def build_tiny_clip(out_dir):
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in alphabet:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(out_dir)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir


def test_tiny_clip_end_to_end(tmp_path):
    path = build_tiny_clip(tmp_path / "tiny_clip")
    scorer = ClipFrameScorer.from_pretrained(str(path), batch_size=4)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 56, 112, 3), dtype=np.uint8)
    candidates = make_candidates(10, 56, 112)
    candidates.video.frames = frames
    question = "Which digit appeared briefly in the video?"
    similarities = scorer.similarities(frames, question)
    assert similarities.shape == (10,) and torch.all(similarities.abs() <= 1 + 1e-5)
    # The same numbers from CLIP's own forward: logits_per_text / exp(logit_scale).
    inputs = scorer.processor(text=[question], images=list(frames), return_tensors="pt", padding=True)
    with torch.no_grad():
        output = scorer.model(**inputs)
    expected = output.logits_per_text[0] / scorer.model.logit_scale.exp()
    torch.testing.assert_close(similarities, expected, rtol=1e-4, atol=1e-5)
    chosen = clip_topk_selection(scorer, candidates, question, 3)
    assert chosen == sorted(chosen) and len(set(chosen)) == 3
    assert chosen == topk_indices(expected, 3)
