"""The person-blocking judge on a tiny random BLIP VQA saved to disk and loaded back the
production way (a ``save_pretrained`` folder, ``local_files_only``, the network cut). Its
answers must be those of the model's own ``generate`` called here one image at a time and
decoded by hand, for questions of different token lengths batched together. Accuracy needs
real weights."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from synreal.audit import AUDIT_FILE, AuditParams, audit_dataset, vlm
from synreal.audit import person_blocking as blocking
from synreal.errors import ConfigError

QUESTION_WORDS = ["is", "part", "of", "occluded", "by", "the", "human", "body", "in", "image",
                  "?", "please", "only", "answer", "or", "."]
#: Class names of 1, 2 and 3 tokens: their questions differ in length.
NAMES = ["cat", "british_shorthair", "staffordshire_bull_terrier"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
VOCAB = [*SPECIAL, "yes", "no", "maybe", *QUESTION_WORDS,
         *sorted({w for n in NAMES for w in n.split("_")})]
ID = {word: i for i, word in enumerate(VOCAB)}


def synbench_question(name: str) -> str:
    """The paper's question (SynBench Section 3.2), written out here independently."""
    return (f"Is part of {name.replace('_', ' ')} occluded by the human body in the image? "
            "Please only answer yes or no.")




@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """``(folder, model, processor)``: a random tiny BLIP VQA, set up to answer in one word
    (see :func:`answer_in_one_word`), and its processor, saved ``save_pretrained``-style."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    root = tmp_path_factory.mktemp("blip")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizer(str(root / "vocab.txt"), bos_token="[DEC]", model_max_length=64)
    text = {"vocab_size": len(VOCAB), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
            "pad_token_id": ID["[PAD]"], "bos_token_id": ID["[DEC]"],
            "sep_token_id": ID["[SEP]"], "initializer_range": 0.1}
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
              "initializer_range": 0.1}
    torch.manual_seed(0)
    model = BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config=vision,
                                                projection_dim=32, initializer_range=0.1))
    size = {"height": 32, "width": 32}
    processor = BlipProcessor(image_processor=BlipImageProcessor(size=size),
                              tokenizer=tokenizer)
    answer_in_one_word(model.eval(), processor)
    folder = root / "blip-vqa"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder), model, processor


def random_images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def answer_in_one_word(model, processor) -> None:
    """Make a random BLIP answer yes, no or maybe, depending on image and question, then stop.

    Random answers are long strings of random words. Here the first answer word is the
    largest of three logits along the two directions in which the decoder's first state
    varies most over random inputs (centred, so that each wins for some); the states after
    it are made input-independent by huge position embeddings, and the end token's output
    embedding points along them, so the answer ends there.
    """
    inputs = [(image, NAMES[i % len(NAMES)]) for i, image in enumerate(random_images(30, 1))]
    decoder = model.text_decoder
    with torch.no_grad():
        bias = decoder.cls.predictions.bias  # tied to the output layer's bias
        bias.fill_(-1000.0)  # no other word
        first = decoder_states(model, processor, inputs, "yes")[:, 0]
        _, _, directions = torch.linalg.svd(first - first.mean(0), full_matrices=False)
        words = decoder.bert.embeddings.word_embeddings.weight  # tied to the output layer
        for word, direction in (("yes", directions[0]), ("no", -directions[0]),
                                ("maybe", directions[1])):
            projection = first @ direction
            words[ID[word]] = direction * 10 / projection.std()
            bias[ID[word]] = -projection.mean() * 10 / projection.std()
        position = decoder.bert.embeddings.position_embeddings.weight
        position[1:] *= 100 * words.norm(dim=1).max() / position[1:].norm(dim=1, keepdim=True)
        after = torch.cat([decoder_states(model, processor, inputs, w)[:, 1]
                           for w in ("yes", "no", "maybe")])
        end = after.mean(0)
        words[ID["[SEP]"]] = end / end.norm() * 50
        bias[ID["[SEP]"]] = -((first @ words[ID["[SEP]"]]).max()
                              + (after @ words[ID["[SEP]"]]).min()) / 2


def decoder_states(model, processor, inputs, word: str) -> torch.Tensor:
    """``(N, 2, d)``: the answer decoder's pre-output states for ``[DEC] word``."""
    states = []
    for image, name in inputs:
        batch = processor(images=[image], text=[synbench_question(name)], return_tensors="pt")
        seen = model.vision_model(pixel_values=batch["pixel_values"])[0]
        question = model.text_encoder(input_ids=batch["input_ids"],
                                      attention_mask=batch["attention_mask"],
                                      encoder_hidden_states=seen, return_dict=False)[0]
        hidden = model.text_decoder.bert(input_ids=torch.tensor([[ID["[DEC]"], ID[word]]]),
                                         encoder_hidden_states=question, is_decoder=True,
                                         return_dict=False)[0]
        states.append(model.text_decoder.cls.predictions.transform(hidden)[0])
    return torch.stack(states)


def reference_answer(model, processor, image: np.ndarray, name: str) -> str:
    """One image, one question: the model's own generate, greedy, decoded by hand."""
    inputs = processor(images=[image], text=[synbench_question(name)], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=vlm.ANSWER_TOKENS, do_sample=False,
                             num_beams=1)
    tokenizer = processor.tokenizer
    words = [tokenizer.convert_ids_to_tokens(int(i)) for i in out[0]]
    return " ".join(w for w in words if w not in SPECIAL)


def reference_verdict(answer: str) -> float:
    return {"yes": 1.0, "no": 0.0}.get(answer, math.nan)


@pytest.fixture(scope="module")
def cases(tiny_blip):
    """``[(image, name, answer)]``: new random images, each asked about one class; the
    answers are the reference computation's and must mix yes, no and others."""
    _, model, processor = tiny_blip
    images = random_images(18, seed=2)
    cases = [(image, NAMES[i % len(NAMES)]) for i, image in enumerate(images)]
    cases = [(image, name, reference_answer(model, processor, image, name))
             for image, name in cases]
    verdicts = [reference_verdict(a) for _, _, a in cases]
    assert verdicts.count(1.0) >= 2 and verdicts.count(0.0) >= 2, verdicts
    assert sum(math.isnan(v) for v in verdicts) >= 2, verdicts  # maybe
    return cases


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_batched_answers_are_the_models_own_one_image_answers(tiny_blip, cases, offline,
                                                              batch_size):
    judge = vlm.BlipVqaJudge(tiny_blip[0], "Salesforce/blip-vqa-base", device="cpu",
                             batch_size=batch_size)
    questions = [synbench_question(n) for _, n, _ in cases]
    answers = judge.answer([image for image, _, _ in cases], questions, progress=False)
    assert answers == [a for _, _, a in cases]
    np.testing.assert_array_equal(vlm.verdicts(answers),
                                  [reference_verdict(a) for _, _, a in cases])
    assert not offline, f"network used: {offline}"


def test_padding_would_change_answers_which_is_why_batches_share_a_length(tiny_blip, cases):
    """Guards the length grouping: one padded batch of mixed lengths answers otherwise."""
    _, model, processor = tiny_blip
    inputs = processor(images=[c[0] for c in cases], padding=True, return_tensors="pt",
                       text=[synbench_question(n) for _, n, _ in cases])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=vlm.ANSWER_TOKENS, do_sample=False,
                             num_beams=1)
    padded = [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]
    assert padded != [a for _, _, a in cases]


def test_images_may_be_paths_decoded_a_batch_at_a_time(tiny_blip, cases, tmp_path):
    from PIL import Image

    paths = []
    for i, (image, _, _) in enumerate(cases):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    judge = vlm.BlipVqaJudge(tiny_blip[0], "Salesforce/blip-vqa-base", device="cpu",
                             batch_size=2)
    answers = judge.answer([str(p) for p in paths], [synbench_question(n) for _, n, _ in cases],
                           progress=False)
    assert answers == [a for _, _, a in cases]


class RecordingJudge:
    """Answers from a script, recording what it was asked."""

    def __init__(self, script):
        self.script, self.asked = list(script), []

    def answer(self, images, questions, progress=True):
        self.asked.append((list(images), list(questions)))
        return self.script[:len(questions)]


def test_only_images_with_a_person_are_asked():
    judge = RecordingJudge(["Yes", "no.", "a dog"])
    count = np.array([0, 2, np.nan, 1, 0, 3])
    answers, blocked = blocking.judge_blocking(
        judge, "Is part of {name} occluded?", ["a", "b", "c", "d", "e", "f"],
        ["cat", "shiba_inu", "cat", "pug", "cat", "beagle"], count, progress=False)
    assert judge.asked == [(["b", "d", "f"], ["Is part of shiba inu occluded?",
                                              "Is part of pug occluded?",
                                              "Is part of beagle occluded?"])]
    assert answers.tolist() == [None, "Yes", None, "no.", None, "a dog"]
    np.testing.assert_array_equal(blocked, [0.0, 1.0, np.nan, 0.0, 0.0, np.nan])


def test_nobody_found_means_nobody_asked():
    judge = RecordingJudge([])
    answers, blocked = blocking.judge_blocking(judge, "{name}?", [], [], np.zeros(0))
    assert judge.asked == [] and len(answers) == 0 and len(blocked) == 0


def test_the_audit_records_both_verdicts_and_reports_both_rates(tiny_blip, toy_sets,
                                                                tmp_path, offline):
    rows = toy_sets["real"].head(24)
    params = AuditParams(person_backend="boxes-from-column", person_vlm="blip-vqa",
                         person_vlm_weights=tiny_blip[0], consistency_backend="none",
                         batch_size=5)
    summary = audit_dataset(params, rows, tmp_path)
    table = pd.read_parquet(tmp_path / AUDIT_FILE)
    with_person = rows["person_bbox"].notna().to_numpy()
    assert 0 < with_person.sum() < len(rows), "the subset must mix images with and without"
    np.testing.assert_array_equal(table["person_boxes"], with_person.astype(float))
    assert (table["person_vlm_answer"].notna().to_numpy() == with_person).all()

    _, model, processor = tiny_blip
    from synreal.data.manifest import load_rgb

    expected = [reference_answer(model, processor, np.array(load_rgb(p)), n)
                for p, n in zip(rows["path"][with_person], rows["label_name"][with_person],
                                strict=True)]
    assert table["person_vlm_answer"][with_person].tolist() == expected
    verdicts = np.where(with_person, np.nan, 0.0)
    verdicts[with_person] = [reference_verdict(a) for a in expected]
    np.testing.assert_array_equal(table["person_vlm_blocked"], verdicts)
    assert table["person_blocked"].notna().all()  # the overlap rule's verdict, kept beside

    block = summary["person_blocking"]
    assert block["rate"] == pytest.approx(table["person_blocked"].mean())
    judged = block["vlm"]
    assert judged["rate"] == pytest.approx(np.nanmean(verdicts))
    assert judged["asked"] == with_person.sum()
    assert judged["yes"] + judged["no"] + judged["unknown"] == judged["asked"]
    assert judged["unknown"] == sum(math.isnan(reference_verdict(a)) for a in expected)
    assert judged["question"] == synbench_question("{name}")
    assert not offline, f"network used: {offline}"


def test_without_a_judge_its_columns_are_not_measured(toy_sets, tmp_path):
    rows = toy_sets["real"].head(6)
    summary = audit_dataset(AuditParams(person_backend="boxes-from-column",
                                        consistency_backend="none"), rows, tmp_path)
    table = pd.read_parquet(tmp_path / AUDIT_FILE)
    assert table["person_vlm_answer"].isna().all() and table["person_vlm_blocked"].isna().all()
    assert "vlm" not in summary["person_blocking"]


@pytest.mark.parametrize("text,expected", [
    ("yes", "yes"), ("Yes", "yes"), (" YES. ", "yes"), ("no", "no"), ("No.", "no"),
    ("", "unknown"), (None, "unknown"), ("yes no", "unknown"), ("yes, partly", "unknown"),
    ("nope", "unknown"), ("not", "unknown"), ("yes!", "unknown"), ("2", "unknown"),
    ("no..", "unknown"),
])
def test_answers_are_parsed_strictly(text, expected):
    assert vlm.parse_answer(text) == expected


def test_unknown_answers_are_never_counted_as_no():
    np.testing.assert_array_equal(vlm.verdicts(["yes", "no", "maybe", ""]),
                                  [1.0, 0.0, np.nan, np.nan])


@pytest.mark.parametrize("weights", [None, "missing"])
def test_missing_weights_name_the_key_the_path_and_the_download(tmp_path, weights):
    path = None if weights is None else str(tmp_path / weights)
    with pytest.raises(ConfigError, match="person_vlm_weights") as error:
        # unset: at plan time, when the params are read; absent: when the judge loads
        params = AuditParams(person_backend="boxes-from-column", person_vlm="blip-vqa",
                             person_vlm_weights=path)
        vlm.create("blip-vqa", params)
    message = str(error.value)
    assert "Salesforce/blip-vqa-base" in message and "hf download" in message
    assert path is None or path in message


def test_a_folder_without_a_model_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="not a BLIP VQA") as error:
        vlm.BlipVqaJudge(str(tmp_path), "Salesforce/blip-vqa-base")
    assert str(tmp_path) in str(error.value)


def test_the_audit_fails_on_missing_weights_before_decoding_images(tmp_path):
    rows = pd.DataFrame({"id": ["a"], "path": [str(tmp_path / "never-read.png")],
                         "label_name": ["cat"], "label": [0]})
    params = AuditParams(person_backend="boxes-from-column", person_vlm="blip-vqa",
                         person_vlm_weights=str(tmp_path / "blip"))
    with pytest.raises(ConfigError, match=str(tmp_path / "blip")):
        audit_dataset(params, rows, tmp_path / "out")


def test_none_is_no_judge_and_unknown_names_list_the_known_ones():
    assert vlm.create("none", AuditParams()) is None
    with pytest.raises(ConfigError, match=r"\['none', 'blip-vqa'\]"):
        vlm.create("gpt-4o", AuditParams())


def test_the_default_question_is_synbenchs():
    params = AuditParams()
    assert params.person_vlm == "none"
    assert params.person_vlm_question.format(name="tench") == synbench_question("tench")


@pytest.mark.parametrize("overrides,match", [
    ({"person_vlm": "gpt-4o", "person_backend": "owlvit"}, r"person_vlm.*blip-vqa"),
    ({"person_vlm": "blip-vqa"}, "person_backend is 'none'"),
    ({"person_vlm": "blip-vqa", "person_backend": "boxes-from-column",
      "person_vlm_question": "Is the {class_name} occluded?"}, "person_vlm_question"),
    ({"person_vlm_question": "Is {0} occluded?"}, "person_vlm_question"),
    ({"person_vlm_question": "Is {name occluded?"}, "person_vlm_question"),
])
def test_bad_judge_settings_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        AuditParams(**overrides)
