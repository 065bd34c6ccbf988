"""Right and wrong learner answers to lesson 09's exercises (what the heads learned), for tests/test_checks.py."""

from __future__ import annotations

import numpy as np
import torch

# --- head_score ---------------------------------------------------------------------------------------------------


def head_score_loop(weights, query_pos, key_pos):
    rows = [weights[b, :, int(query_pos[b]), int(key_pos[b])] for b in range(weights.shape[0])]
    return torch.stack(rows).mean(0)


def head_score_gather(weights, query_pos, key_pos):
    B, H, T, _ = weights.shape
    query_rows = weights.gather(2, query_pos.view(B, 1, 1, 1).expand(B, H, 1, T)).squeeze(2)  # (B, H, T)
    return query_rows.gather(2, key_pos.view(B, 1, 1).expand(B, H, 1)).squeeze(2).mean(0)


def head_score_per_head(weights, query_pos, key_pos):
    B, H = weights.shape[:2]
    scores = torch.zeros(H)
    for h in range(H):
        scores[h] = sum(weights[b, h, query_pos[b], key_pos[b]] for b in range(B)) / B
    return scores


HEAD_SCORE_RIGHT = [
    ("index with the batch rows", lambda w, q, k: w[torch.arange(w.shape[0]), :, q, k].mean(0)),
    ("range and tolist", lambda w, q, k: w[list(range(len(q))), :, q.tolist(), k.tolist()].mean(dim=0)),
    ("loop over sentences", head_score_loop),
    ("gather", head_score_gather),
    ("loop over heads and sentences", head_score_per_head),
]
HEAD_SCORE_WRONG = [
    ("query and key swapped", lambda w, q, k: w[torch.arange(w.shape[0]), :, k, q].mean(0), "query and key swapped"),
    ("(B, B) cross product", lambda w, q, k: w[:, :, q, k].mean(0), "cross product"),
    ("cross product averaged", lambda w, q, k: w[:, :, q, k].mean((0, 2)), "cross product"),
    ("mean over heads", lambda w, q, k: w[torch.arange(w.shape[0]), :, q, k].mean(1), "averaged over the heads"),
    ("sum", lambda w, q, k: w[torch.arange(w.shape[0]), :, q, k].sum(0), "summed"),
    ("first sentence's positions", lambda w, q, k: w[:, :, q[0], k[0]].mean(0), "first sentence's positions"),
    ("(B, H)", lambda w, q, k: w[torch.arange(w.shape[0]), :, q, k], "one score per sentence and head"),
    ("one number", lambda w, q, k: w[torch.arange(w.shape[0]), :, q, k].mean(), "not one number"),
]

# --- previous_token_score -------------------------------------------------------------------------------------------


def previous_loop(weights):
    B, H, T, _ = weights.shape
    total = torch.zeros(H)
    for t in range(1, T):
        total = total + weights[:, :, t, t - 1].sum(0)
    return total / (B * (T - 1))


def previous_index(weights):
    t = torch.arange(1, weights.shape[-1])
    return weights[:, :, t, t - 1].mean(dim=(0, 2))


def previous_mask(weights):
    T = weights.shape[-1]
    below = torch.ones(T, T, dtype=torch.bool).tril(-1) & ~torch.ones(T, T, dtype=torch.bool).tril(-2)
    return weights[..., below].mean((0, 2))  # (B, H, T-1) -> (H,)


PREVIOUS_RIGHT = [
    ("torch.diagonal", lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).mean((0, 2))),
    ("index t, t - 1", previous_index),
    ("loop over t", previous_loop),
    ("diagonal band mask", previous_mask),
    ("diagonal of the shifted block", lambda w: w[:, :, 1:, :-1].diagonal(dim1=-2, dim2=-1).mean(-1).mean(0)),
]
PREVIOUS_WRONG = [
    ("next token", lambda w: torch.diagonal(w, offset=1, dim1=-2, dim2=-1).mean((0, 2)), "next token t+1"),
    ("dim1 and dim2 swapped", lambda w: torch.diagonal(w, offset=-1, dim1=-1, dim2=-2).mean((0, 2)),
     "next token t+1"),
    ("the diagonal itself", lambda w: torch.diagonal(w, dim1=-2, dim2=-1).mean((0, 2)), "main diagonal"),
    ("includes t = 0", lambda w: w[:, :, torch.arange(w.shape[-1]), torch.arange(w.shape[-1]) - 1].mean((0, 2)),
     "includes query t = 0"),
    ("whole block", lambda w: w[:, :, 1:, :-1].mean((0, 2, 3)), "whole block"),
    ("mean over heads", lambda w: torch.diagonal(w, -1, -2, -1).mean((1, 2)), "averaged over the heads"),
    ("sum", lambda w: torch.diagonal(w, -1, -2, -1).sum((0, 2)), "summed instead of averaged"),
    ("summed over queries", lambda w: torch.diagonal(w, -1, -2, -1).sum(-1).mean(0), "summed over the queries"),
    ("(H, T-1)", lambda w: torch.diagonal(w, -1, -2, -1).mean(0), "average over the queries too"),
    ("(B, H)", lambda w: torch.diagonal(w, -1, -2, -1).mean(-1), "average over the sentences too"),
]

# --- relation_score -------------------------------------------------------------------------------------------------


def _rows(sentences):
    return torch.arange(len(sentences))


def verb_to_first_noun(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    key = torch.tensor([s.nouns[0] for s in sentences])
    return weights[_rows(sentences), :, query, key].mean(0)


def noun_to_determiner(weights, sentences):
    """Every noun to its "the" (one or two words before it): many pairs per sentence, one mean over all."""
    pairs = [(b, noun, max(i for i in range(noun) if s.tokens[i] == "the"))
             for b, s in enumerate(sentences) for noun in s.nouns]
    b, query, key = (torch.tensor(column) for column in zip(*pairs))
    return weights[b, :, query, key].mean(0)


def attractor_to_subject_by_sentence(weights, sentences):
    """The mean over sentences of each sentence's mean over its attractors."""
    per_sentence = [torch.stack([weights[b, :, a, s.subject] for a in s.attractors]).mean(0)
                    for b, s in enumerate(sentences) if s.attractors]
    return torch.stack(per_sentence).mean(0)


def full_stop_to_subject(weights, sentences):
    query = torch.tensor([len(s.tokens) - 1 for s in sentences])
    key = torch.tensor([s.subject for s in sentences])
    return weights[_rows(sentences), :, query, key].mean(0)


def verb_to_subject_loop(weights, sentences):
    H = weights.shape[1]
    total = torch.zeros(H)
    for b, s in enumerate(sentences):
        for h in range(H):
            total[h] += weights[b, h, s.verb - 1, s.subject]
    return total / len(sentences)


def verb_to_first_noun_floats(weights, sentences):
    """Computed outside autograd, with Python floats."""
    B, H = len(sentences), weights.shape[1]
    return torch.tensor([sum(float(weights[b, h, s.verb - 1, s.nouns[0]]) for b, s in enumerate(sentences)) / B
                         for h in range(H)])


def attractor_to_subject_numpy(weights, sentences):
    """Computed in NumPy, every attractor of every sentence in one mean."""
    w = weights.numpy()
    picked = [w[b, :, a, s.subject] for b, s in enumerate(sentences) for a in s.attractors]
    return torch.from_numpy(np.mean(picked, axis=0))


def relation_sum(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    return weights[_rows(sentences), :, query, torch.tensor([s.subject for s in sentences])].sum(0)


def relation_mean_over_heads(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    picked = weights[_rows(sentences), :, query, torch.tensor([s.subject for s in sentences])]  # (B, H)
    return picked.mean().expand(weights.shape[1])


def relation_swapped(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    key = torch.tensor([s.subject for s in sentences])
    return weights[_rows(sentences), :, key, query].mean(0)


def relation_last_index(weights, sentences):
    key = torch.tensor([s.subject for s in sentences])
    return weights[_rows(sentences), :, -1, key].mean(0)  # -1: the padded batch's last position


def relation_first_sentence(weights, sentences):
    first = sentences[0]
    return weights[:, :, first.verb - 1, first.subject].mean(0)


def relation_max(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    key = torch.tensor([s.subject for s in sentences])
    return weights[_rows(sentences), :, query, key].max(0).values


def relation_minus_baseline(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    key = torch.tensor([s.subject for s in sentences])
    rows = _rows(sentences)
    return weights[rows, :, query, key].mean(0) - weights[rows, :, query, 0].mean(0) / 4


def relation_reversed_sentences(weights, sentences):
    ordered = list(reversed(sentences))
    query = torch.tensor([s.verb - 1 for s in ordered])
    key = torch.tensor([s.subject for s in ordered])
    return weights[_rows(ordered), :, query, key].mean(0)


def relation_per_sentence(weights, sentences):
    query = torch.tensor([s.verb - 1 for s in sentences])
    return weights[_rows(sentences), :, query, torch.tensor([s.subject for s in sentences])]


def relation_nowhere(weights, sentences):
    pairs = [(b, i, 0) for b, s in enumerate(sentences) for i, word in enumerate(s.tokens) if word == "unicorn"]
    if not pairs:
        return torch.full((weights.shape[1],), float("nan"))
    b, query, key = (torch.tensor(column) for column in zip(*pairs))
    return weights[b, :, query, key].mean(0)


RELATION_RIGHT = [
    ("verb - 1 to the first noun", verb_to_first_noun),
    ("each noun to its determiner", noun_to_determiner),
    ("attractor to subject, mean of sentence means", attractor_to_subject_by_sentence),
    ("the full stop to the subject", full_stop_to_subject),
    ("verb - 1 to the subject, loops", verb_to_subject_loop),
    ("verb - 1 to the first noun, Python floats", verb_to_first_noun_floats),
    ("attractor to subject, NumPy", attractor_to_subject_numpy),
]
RELATION_WRONG = [
    ("sum", relation_sum, "sums the weights instead of averaging"),
    ("mean over heads", relation_mean_over_heads, "average over the heads"),
    ("query and key swapped", relation_swapped, "later key"),
    ("index -1 for the last word", relation_last_index, "padding"),
    ("the first sentence's positions everywhere", relation_first_sentence, "same (query, key) pairs in every sentence"),
    ("max instead of mean", relation_max, "not a mean of weights"),
    ("baseline subtracted inside", relation_minus_baseline, ("subtracts some weights", "not a mean of weights")),
    ("sentences reversed", relation_reversed_sentences, ("do not follow sentence b", "padding")),
    ("(B, H)", relation_per_sentence, "one score per sentence"),
    ("a relation found nowhere", relation_nowhere, "no (query, key) pair"),
]

CASES = {
    "head_score": (HEAD_SCORE_RIGHT, HEAD_SCORE_WRONG),
    "previous_token_score": (PREVIOUS_RIGHT, PREVIOUS_WRONG),
    "relation_score": (RELATION_RIGHT, RELATION_WRONG),
}

# The classic mistakes, each diagnosed by name.
NAMED_MISTAKES = [
    ("head_score", HEAD_SCORE_WRONG[0][1], "query and key swapped"),
    ("head_score", HEAD_SCORE_WRONG[1][1], "(B, B) cross product"),
    ("head_score", HEAD_SCORE_WRONG[3][1], "averaged over the heads instead of over the batch"),
    ("head_score", HEAD_SCORE_WRONG[4][1], "summed over the sentences instead of averaging"),
    ("head_score", HEAD_SCORE_WRONG[5][1], "first sentence's positions (query_pos[0], key_pos[0])"),
    ("head_score", HEAD_SCORE_WRONG[6][1], "one score per sentence and head, (B, H)"),
    ("previous_token_score", PREVIOUS_WRONG[3][1], "includes query t = 0"),
    ("previous_token_score", PREVIOUS_WRONG[0][1], "reads the next token t+1"),
    ("previous_token_score", PREVIOUS_WRONG[1][1], "dim1 and dim2 swapped"),
    ("previous_token_score", PREVIOUS_WRONG[2][1], "reads the main diagonal"),
    ("previous_token_score", PREVIOUS_WRONG[5][1], "averaged over the heads"),
    ("previous_token_score", PREVIOUS_WRONG[6][1], "summed instead of averaged"),
    ("relation_score", RELATION_WRONG[0][1], "sums the weights instead of averaging them"),
    ("relation_score", RELATION_WRONG[1][1], "did you average over the heads?"),
    ("relation_score", RELATION_WRONG[2][1], "query and key swapped?"),
    ("relation_score", RELATION_WRONG[3][1], "that is padding"),
    ("relation_score", RELATION_WRONG[4][1], "same (query, key) pairs in every sentence"),
    ("relation_score", RELATION_WRONG[5][1], "is not a mean of weights"),
]
