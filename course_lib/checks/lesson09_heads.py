"""Checks for lesson 09, what the heads learned: one score per head for a (query, key) pair of each sentence,
the previous-token score, and a score for a relation of the learner's own choice."""

from __future__ import annotations

import torch

from course_lib.experiments.grammar import AgreementGrammar, Sentence
from course_lib.validation import shape_str
from .kit import Fail, Inputs, call, check, check_tensor, compare, describe_type, fmt_number, non_contiguous, summary

LESSON = "09_what_heads_learn"


def _attention(rng: Inputs, B: int, H: int, T: int, causal: bool = True) -> torch.Tensor:
    """Random attention weights ``(B, H, T, T)``: each query's weights over the keys sum to 1; with ``causal``
    a query gives no weight to later keys, like a language model's."""
    scores = rng.randn(B, H, T, T) * 2
    if causal:
        later = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(later, float("-inf"))
    return scores.softmax(-1)


# --- head_score -------------------------------------------------------------------------------------------------

def _head_score(weights, query_pos, key_pos):
    rows = torch.arange(weights.shape[0])
    return weights[rows, :, query_pos, key_pos].mean(0)  # (B, H) -> (H,)


@check("head_score", lesson=LESSON, reference=_head_score)
def check_head_score(candidate) -> str:
    """``head_score(weights (batch, heads, query, key), query_pos (batch,), key_pos (batch,)) -> (heads,)``: each
    head's mean weight from sentence b's query position to its key position."""
    rng = Inputs()
    B, H = rng.int(3, 6), rng.int(2, 5)
    if H == B:
        H += 1
    T = rng.int(B + 2, 12)
    B2, H2, T2 = rng.int(2, 5), rng.int(2, 4), rng.int(4, 10)
    H3, T3, B4, H4, B5, T5 = rng.int(2, 4), rng.int(3, 8), rng.int(2, 4), rng.int(2, 4), rng.int(2, 5), rng.int(3, 8)
    queries = rng.permutation(T)[:B]  # a different query in every sentence
    causal_queries = rng.randint(T2, B2)
    cases = [
        (f"attention over all keys, batch {B}, {H} heads, T {T}", _attention(rng, B, H, T, causal=False),
         queries, rng.randint(T, B)),
        (f"causal attention, batch {B2}, {H2} heads, T {T2}", _attention(rng, B2, H2, T2),
         causal_queries, (rng.rand(B2) * (causal_queries + 1)).long()),
        (f"batch of 1, {H3} heads, T {T3}", _attention(rng, 1, H3, T3), torch.tensor([T3 - 1]),
         rng.randint(T3, 1)),
        (f"T = 1, batch {B4}, {H4} heads", _attention(rng, B4, H4, 1), torch.zeros(B4, dtype=torch.long),
         torch.zeros(B4, dtype=torch.long)),
        (f"one head, batch {B5}, T {T5}", _attention(rng, B5, 1, T5, causal=False), rng.randint(T5, B5),
         rng.randint(T5, B5)),
        (f"non-contiguous weights and positions, batch {B}, {H} heads, T {T}",
         non_contiguous(_attention(rng, B, H, T, causal=False)), rng.randint(T, 2 * B)[::2], queries.flip(0)),
    ]
    for label, weights, query_pos, key_pos in cases:
        got = call(candidate, (weights, query_pos, key_pos), ("weights", "query_pos", "key_pos"), label)
        rows = torch.arange(weights.shape[0])
        picked = weights[rows, :, query_pos, key_pos]  # (B, H)
        mistakes = [
            ("query and key swapped: weights[b, :, q, k] is the weight from query q (a row) to key k (a column); "
             "you read weights[b, :, key, query]", lambda: weights[rows, :, key_pos, query_pos].mean(0)),
            ("indexes with both position tensors but not the batch: weights[:, :, query_pos, key_pos] pairs every "
             "sentence with every sentence's positions (a (B, B) cross product); index the batch with "
             "torch.arange(B) too", lambda: weights[:, :, query_pos, key_pos].mean(0)),
            ("indexes with both position tensors but not the batch: weights[:, :, query_pos, key_pos] pairs every "
             "sentence with every sentence's positions (a (B, B) cross product) before the mean; index the batch "
             "with torch.arange(B) too", lambda: weights[:, :, query_pos, key_pos].mean((0, 2))),
            ("averaged over the heads instead of over the batch: one score per head is the mean over the "
             "sentences (dim 0)", lambda: picked.mean(1)),
            ("summed over the sentences instead of averaging: a score is a mean weight, between 0 and 1",
             lambda: picked.sum(0)),
            ("uses the first sentence's positions (query_pos[0], key_pos[0]) for every sentence: sentence b has its "
             "own positions, query_pos[b] and key_pos[b]", lambda: weights[:, :, query_pos[0], key_pos[0]].mean(0)),
            ("returns one score per sentence and head, (B, H): average over the sentences", lambda: picked),
            ("averaged over the heads too: return one score per head, shape (H,), not one number",
             lambda: picked.mean()),
        ]
        compare(got, picked.mean(0), label, mistakes, what="the scores")
    return summary(len(cases), ["attention over all keys", "causal attention", "batch of 1", "T = 1", "one head",
                                "non-contiguous weights"], "matches each head's mean weight from query to key")


# --- previous_token_score ---------------------------------------------------------------------------------------

def _previous_token_score(weights):
    below = torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1): query t, key t-1
    return below.mean((0, 2))


@check("previous_token_score", lesson=LESSON, reference=_previous_token_score)
def check_previous_token_score(candidate) -> str:
    """``previous_token_score(weights (batch, heads, query, key)) -> (heads,)``: each head's mean weight from
    query t to key t-1, over the queries t >= 1 of every sentence."""
    rng = Inputs()
    B, H = rng.int(2, 5), rng.int(2, 5)
    if H == B:
        H += 1
    T, B2, H2, T2, H3, T4 = rng.int(4, 10), rng.int(2, 4), rng.int(2, 4), rng.int(3, 9), rng.int(2, 4), rng.int(3, 8)
    perfect = torch.zeros(2, 3, T4, T4)
    perfect[:, :, 0, 0] = 1  # the first token has nothing before it: it looks at itself
    perfect[:, :, torch.arange(1, T4), torch.arange(T4 - 1)] = 1
    perfect[:, 1] = _attention(rng, 2, 1, T4)[:, 0]  # head 1 is an ordinary head beside two perfect ones
    cases = [
        (f"attention over all keys, batch {B}, {H} heads, T {T}", _attention(rng, B, H, T, causal=False)),
        (f"causal attention, batch {B2}, {H2} heads, T {T2}", _attention(rng, B2, H2, T2)),
        (f"T = 2, batch {B2}, {H3} heads", _attention(rng, B2, H3, 2)),
        (f"batch of 1, one head, T {T2}", _attention(rng, 1, 1, T2)),
        (f"two perfect previous-token heads (score 1) beside a random one, T {T4}", perfect),
        (f"non-contiguous weights, batch {B}, {H} heads, T {T}", non_contiguous(_attention(rng, B, H, T, False))),
    ]
    for label, weights in cases:
        got = call(candidate, (weights,), ("weights",), label)
        T = weights.shape[-1]
        t = torch.arange(T)
        below = torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1)
        mistakes = [
            ("reads the next token t+1 (the diagonal above the main one: torch.diagonal with offset=+1, or with "
             "dim1 and dim2 swapped): the previous token is offset=-1, dim1=-2 (queries), dim2=-1 (keys)",
             lambda: torch.diagonal(weights, offset=1, dim1=-2, dim2=-1).mean((0, 2))),
            ("reads the main diagonal, each token's weight on itself: the previous token is key t-1 (offset=-1)",
             lambda: torch.diagonal(weights, dim1=-2, dim2=-1).mean((0, 2))),
            ("reads the main diagonal, each token's weight on itself: the previous token is key t-1 (offset=-1)",
             lambda: torch.diagonal(weights, dim1=-2, dim2=-1)[..., 1:].mean((0, 2))),
            ("includes query t = 0, which has no previous token (index t-1 = -1 wraps round to the last key): "
             "average over t = 1 ... T-1 only", lambda: weights[:, :, t, t - 1].mean((0, 2))),
            ("divides by T: only the T-1 queries t = 1 ... T-1 have a previous token",
             lambda: below.sum((0, 2)) / (weights.shape[0] * T)),
            ("averages the whole block weights[:, :, 1:, :-1]: only its diagonal (query t, key t-1) holds "
             "previous-token weights", lambda: weights[:, :, 1:, :-1].mean((0, 2, 3))),
            ("averaged over the heads: return one score per head, the mean over the batch and the queries",
             lambda: below.mean((1, 2))),
            ("summed instead of averaged: a score is a mean weight, between 0 and 1", lambda: below.sum((0, 2))),
            ("summed over the queries instead of averaging: a score is a mean weight, between 0 and 1",
             lambda: below.sum(2).mean(0)),
            ("returns one score per head and query, (H, T-1): average over the queries too", lambda: below.mean(0)),
            ("returns one score per sentence and head, (B, H): average over the sentences too",
             lambda: below.mean(2)),
            ("averaged over the heads too: return one score per head, shape (H,), not one number",
             lambda: below.mean()),
        ]
        compare(got, below.mean((0, 2)), label, mistakes, what="the scores")
    return summary(len(cases), ["attention over all keys", "causal attention", "T = 2", "batch of 1",
                                "perfect previous-token heads", "non-contiguous weights"],
                   "matches each head's mean weight on the previous token")


# --- relation_score: a relation of the learner's choice -----------------------------------------------------------

def _relation_score(weights, sentences):
    """The mean weight from the position that predicts the verb (verb - 1) to the sentence's first noun."""
    rows = torch.arange(len(sentences))
    query = torch.tensor([s.verb - 1 for s in sentences])
    key = torch.tensor([s.nouns[0] for s in sentences])
    return weights[rows, :, query, key].mean(0)


def _grammar_sentences(rng: Inputs, n: int) -> list[Sentence]:
    """``n`` sentences like the reference's test set (at least one attractor between subject and verb), their
    subjects at different positions and their verbs too, so that a relation's pairs differ between them."""
    pool = AgreementGrammar(seed=rng.int(0, 10**6)).sentences(20 * n, min_attractors=1)
    chosen: list[Sentence] = []
    for sentence in pool:
        if all(sentence.subject != other.subject and sentence.verb != other.verb for other in chosen):
            chosen.append(sentence)
        if len(chosen) == n:
            return chosen
    return chosen + [s for s in pool if s not in chosen][: n - len(chosen)]


def _richest(rng: Inputs) -> Sentence:
    """A sentence with much structure (nouns, neighbour pairs, words): most relations have a pair in it."""
    candidates = AgreementGrammar(seed=rng.int(0, 10**6), max_modifiers=2).sentences(30, min_attractors=2)
    return max(candidates, key=lambda s: (len(s.nouns), len(s.neighbours), len(s.tokens)))


def _scores(got, H: int, label: str, what: str = "the scores") -> torch.Tensor:
    """The learner's answer as a float tensor of shape (H,), or ``Fail`` saying what came instead."""
    if got is None:
        raise Fail(f"returned None ({label}): did you forget `return`?")
    if not isinstance(got, torch.Tensor):
        raise Fail(f"returned {describe_type(got)} ({label}); expected {what} as a torch.Tensor of shape ({H},), "
                   f"one score per head")
    check_tensor(got, torch.zeros(H), label, what)
    if got.shape != (H,):
        if got.dim() == 2 and got.shape[1] == H:
            raise Fail(f"returns shape {shape_str(got.shape)} ({label}), one score per sentence (or pair) and head: "
                       f"average over them too, to get one score per head, ({H},)")
        raise Fail(f"{what} have shape {shape_str(got.shape)} ({label}); expected one score per head, ({H},)")
    if got.dtype != torch.float32:
        raise Fail(f"{what} have dtype {got.dtype} ({label}); expected torch.float32, like the weights")
    return got.detach()


def _coefficients(candidate, sentences: list[Sentence], T: int, label: str, rng: Inputs,
                  probe: bool = True) -> torch.Tensor | None:
    """What the learner's score reads: ``(B, T, T)``, the share of each weight ``(b, query, key)`` in the score.

    A mean of weights is a weighted sum of them, the same for every head, so its gradient with respect to the
    weights is those shares. A score computed outside autograd (``float(...)``, ``.item()``, ``.tolist()``) is
    probed instead: with T*T heads, head q*T + k has weight 1 at (b, q, k) and 0 elsewhere, so its score is that
    share (None when not ``probe``). Whether the shares really give the score is checked on other weights.
    """
    B = len(sentences)
    leaf = _attention(rng, B, 2, T).requires_grad_()
    try:
        got = call(candidate, (leaf.clone(), list(sentences)), ("weights", "sentences"), label)
        _scores(got, 2, label)
    except Fail:  # e.g. .numpy() refuses a tensor that requires grad: the probe below tells
        got = None
    if got is not None and got.requires_grad:
        try:
            (gradient,) = torch.autograd.grad(got.sum(), leaf, allow_unused=True)
        except RuntimeError:
            gradient = None
        if gradient is not None and torch.allclose(gradient[:, 0], gradient[:, 1], atol=1e-7):
            return gradient[:, 0]
    if not probe:
        return None
    heads = torch.arange(T * T)
    coefficients = torch.zeros(B, T, T)
    for b in range(B):
        weights = torch.zeros(B, T * T, T, T)
        weights[b, heads, heads // T, heads % T] = 1
        probed = f"{label}, probed with {T * T} heads: one per (query, key), weight 1 there and 0 elsewhere"
        got = call(candidate, (weights, list(sentences)), ("weights", "sentences"), probed)
        coefficients[b] = _scores(got, T * T, probed).reshape(T, T)
    return coefficients


def _pairs(coefficients: torch.Tensor) -> list[frozenset]:
    """Per sentence, the (query, key) pairs the score reads."""
    return [frozenset(map(tuple, (c.abs() > 1e-7).nonzero().tolist())) for c in coefficients]


@check("relation_score", lesson=LESSON, reference=_relation_score, time_limit=10.0)
def check_relation_score(candidate) -> str:
    """``relation_score(weights (batch, heads, query, key), sentences) -> (heads,)``: each head's mean weight over
    (query, key) pairs of a relation of your choice, found in each sentence's tokens or annotations.

    The check cannot know your relation; it verifies what every such score must do, on real grammar sentences
    and random attention: one float per head, between 0 and 1; a mean of weights (attention that is 1 everywhere
    scores 1, and the score is the same weighted sum of weights for every head, each head's from its own);
    no weight from a query to a later key (a causal model has none) nor at padding; pairs that move with
    each sentence's own positions.
    """
    rng = Inputs()
    main = _grammar_sentences(rng, rng.int(4, 6))
    richest = _richest(rng)
    longest = max(len(s.tokens) for s in main)
    cases = [
        (f"{len(main)} grammar sentences, 4 heads, padded to T {longest + 1}", main, longest + 1, False),
        (f"batch of 1 sentence, 3 heads: {richest.text!r}", [richest], len(richest.tokens), False),
        (f"non-contiguous weights, {len(main)} sentences, 2 heads, padded to T {longest}", main, longest, True),
    ]
    for index, (label, sentences, T, strided) in enumerate(cases):
        B, H = len(sentences), (4, 3, 2)[index]
        weights = _attention(rng, B, H, T)
        weights = non_contiguous(weights) if strided else weights
        before = list(sentences)
        scores = _scores(call(candidate, (weights, sentences), ("weights", "sentences"), label), H, label)
        if sentences != before:
            raise Fail(f"changes its input `sentences` in place ({label}): leave the list as it is")
        if bool(torch.isnan(scores).any()):
            raise Fail(f"returns NaN ({label}): a mean of no weights. Your relation has no (query, key) pair in "
                       f"{'this sentence' if B == 1 else f'these {B} sentences'}: choose one that every test "
                       f"sentence has, or skip the sentences without it")
        if not bool(torch.isfinite(scores).all()):
            raise Fail(f"returns inf ({label}); expected mean weights between 0 and 1")
        ones = _scores(call(candidate, (torch.ones(B, H, T, T), sentences), ("weights", "sentences"),
                            f"{label}, every weight 1"), H, f"{label}, every weight 1")
        if not torch.allclose(ones, torch.ones(H), atol=1e-5):
            value = fmt_number(float(ones[0]))
            kind = ("sums the weights instead of averaging them" if float(ones[0]) > 1
                    else "is not a mean of weights (does it subtract something, or divide by too much?)")
            raise Fail(f"{kind}: attention that is 1 everywhere must score 1 (the mean of ones), yours scores "
                       f"{value} ({label})")
        others = weights.clone()
        others[:, 1:] = _attention(rng, B, H - 1, T)
        head_0 = _scores(call(candidate, (others, sentences), ("weights", "sentences"),
                              f"{label}, only heads 1+ changed"), H, f"{label}, only heads 1+ changed")
        if not torch.allclose(head_0[0], scores[0], atol=1e-6):
            raise Fail(f"head 0's score changes from {fmt_number(float(scores[0]))} to {fmt_number(float(head_0[0]))} "
                       f"when only the other heads' weights change ({label}): each head's score must come from its own "
                       f"weights (did you average over the heads?)")
        if float(scores.min()) < -1e-6 or float(scores.max()) > 1 + 1e-5:
            raise Fail(f"returns scores from {fmt_number(float(scores.min()))} to {fmt_number(float(scores.max()))} "
                       f"({label}); a mean of attention weights lies between 0 and 1")
        coefficients = _coefficients(candidate, sentences, T, label, rng, probe=index == 0)
        if coefficients is None:  # computed outside autograd: the slow probe runs on the first input only
            continue
        predicted = torch.einsum("bqk,bhqk->h", coefficients, weights)
        if not (torch.allclose(predicted, scores, atol=1e-5)
                and torch.allclose(torch.einsum("bqk,bhqk->h", coefficients, others), head_0, atol=1e-5)):
            raise Fail(f"is not a mean of weights ({label}): a mean adds up fixed shares of the weights, the same "
                       f"for every head, but yours gives {fmt_number(float(scores[0]))} for head 0 where its shares "
                       f"of the weights add up to {fmt_number(float(predicted[0]))} (a max, a threshold, a product?)")
        if float(coefficients.min()) < -1e-7:
            raise Fail(f"subtracts some weights ({label}): a mean of weights only adds them up, with positive "
                       f"shares (compare with a baseline beside the score, not inside it)")
        query, key = torch.arange(T)[:, None], torch.arange(T)[None, :]
        read = coefficients.abs() > 1e-7  # (B, T, T): the weights the score reads
        if bool((read & (key > query)).any()):
            b, q, k = (int(i) for i in (read & (key > query)).nonzero()[0])
            raise Fail(f"reads the weight from query {q} to the later key {k} in sentence {b} ({label}): a causal "
                       f"model gives later keys no weight, so that score is always 0 (query and key swapped? "
                       f"weights[b, :, query, key])")
        pairs = _pairs(coefficients)
        if B > 1 and len(set(pairs)) == 1:
            raise Fail(f"reads the same (query, key) pairs in every sentence, {sorted(pairs[0])[:3]} ({label}): the "
                       f"words of a relation stand at different positions in different sentences; take each "
                       f"sentence's positions from its own annotations or tokens (not sentences[0]'s)")
        lengths = torch.tensor([len(s.tokens) for s in sentences])
        outside = (query[None] >= lengths[:, None, None]) | (key[None] >= lengths[:, None, None])
        if bool((read & outside).any()):
            b, q, k = (int(i) for i in (read & outside).nonzero()[0])
            raise Fail(f"reads the weight from query {q} to key {k} in sentence {b}, which has only "
                       f"{int(lengths[b])} tokens: that is padding ({label}). Index -1 is the padded batch's "
                       f"last position, not the sentence's: take positions from each sentence itself, row b "
                       f"from sentences[b]")
        if index == 0:
            # Each sentence alone, as a batch of 1: a score that follows each sentence reads the same pairs for
            # it there as in row b of the batch. (A reordering test misses mistakes that commute with it, e.g.
            # reversed sentences under some permutations.)
            for b in range(B):
                alone = _coefficients(candidate, [sentences[b]], T, f"{label}, sentence {b} alone", rng)
                if _pairs(alone)[0] != pairs[b]:
                    raise Fail(f"the pairs read in row b of the weights do not follow sentence b ({label}): "
                               f"sentence {b} alone gives the pairs {sorted(_pairs(alone)[0])[:3]}, in row {b} of "
                               f"the batch {sorted(pairs[b])[:3]}; row b of the weights belongs to sentences[b]")
    return summary(len(cases), ["batch of 1", "non-contiguous weights", "padding"],
                   "a mean of attention weights (all-ones attention scores 1), each head from its own weights, "
                   "over (query, key) pairs that follow each sentence, never a later key nor padding,")
