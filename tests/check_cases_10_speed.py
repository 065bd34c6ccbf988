"""Right and wrong answers to lesson 10's exercises, in the format of tests/test_checks.py.

CASES: exercise name -> (right answers, wrong answers); each wrong one names words its diagnosis must contain.
NAMED_MISTAKES: the classic mistakes, each diagnosed by name. DELEGATING / HAND_BUILT: the built-in that
does an exercise for the learner, and a hand-built answer that gets no note.
"""

from __future__ import annotations

import torch



# --- rnn_forward -------------------------------------------------------------------------------------------------


def rnn_loop(cell, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1)


def rnn_preallocated(cell, x, h0):
    B, T, _ = x.shape
    out = x.new_zeros(B, T, cell.hidden_size)
    h = h0
    for t in range(T):
        h = cell(x[:, t, :], h)
        out[:, t] = h
    return out


def rnn_unbind(cell, x, h0):
    states, h = [], h0
    for x_t in x.unbind(dim=1):
        h = cell(x_t, h)
        states.append(h.unsqueeze(1))
    return torch.cat(states, dim=1)


def rnn_by_the_equations(cell, x, h0):
    """The GRU's equations written out with the cell's weights."""
    h, states = h0, []
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    for t in range(x.shape[1]):
        x_t = x[:, t]
        r = torch.sigmoid(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(x_t @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
        h = (1 - z) * n + z * h
        states.append(h)
    return torch.stack(states, dim=1)


def rnn_no_carry(cell, x, h0):
    return torch.stack([cell(x[:, t], h0) for t in range(x.shape[1])], dim=1)


def rnn_state_before(cell, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        states.append(h)
        h = cell(x[:, t], h)
    return torch.stack(states, dim=1)


def rnn_backwards(cell, x, h0):
    h, states = h0, []
    for t in reversed(range(x.shape[1])):
        h = cell(x[:, t], h)
        states.insert(0, h)
    return torch.stack(states, dim=1)


def rnn_swapped(cell, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(h, x[:, t])
        states.append(h)
    return torch.stack(states, dim=1)


def rnn_last_only(cell, x, h0):
    h = h0
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
    return h


def rnn_time_first(cell, x, h0):
    return rnn_loop(cell, x, h0).transpose(0, 1)


def rnn_list(cell, x, h0):
    return list(rnn_loop(cell, x, h0).unbind(1))


def rnn_no_grad(cell, x, h0):
    with torch.no_grad():
        return rnn_loop(cell, x, h0)


RNN_RIGHT = [
    ("loop and stack", rnn_loop),
    ("preallocated output", rnn_preallocated),
    ("unbind and cat", rnn_unbind),
    ("the GRU's equations", rnn_by_the_equations),
]
RNN_WRONG = [
    ("h0 at every step", rnn_no_carry, "uses h0 at every step"),
    ("the state before each step", rnn_state_before, "from before each step"),
    ("backwards", rnn_backwards, "reads the sequence backwards"),
    ("cell(h, x)", rnn_swapped, "takes the input first"),
    ("only the last state", rnn_last_only, "only the last state"),
    ("stacked along time first", rnn_time_first, "(time, batch, H)"),
    ("a list of states", rnn_list, "torch.stack(states, dim=1)"),
    ("under no_grad", rnn_no_grad, "cut off from autograd"),
]

# --- reach ----------------------------------------------------------------------------------------------------


def reach_matrix_power(mask, n_layers):
    hop = (mask | torch.eye(mask.shape[0], dtype=torch.bool)).int()
    return torch.linalg.matrix_power(hop, n_layers) > 0


def reach_by_rows(mask, n_layers):
    """Spread a set of reached inputs one layer at a time, row by row, in plain Python."""
    T = mask.shape[0]
    reached = [{i} for i in range(T)]
    for _ in range(n_layers):
        reached = [set(reached[i]).union(*(reached[j] for j in range(T) if mask[i, j])) for i in range(T)]
    out = torch.zeros(T, T, dtype=torch.bool)
    for i, inputs in enumerate(reached):
        out[i, list(inputs)] = True
    return out


def reach_float_product(mask, n_layers):
    T = mask.shape[0]
    hop = mask.float() + torch.eye(T)
    reached = torch.eye(T)
    for _ in range(n_layers):
        reached = (hop @ reached).clamp(max=1)
    return reached > 0


def _reach_with(mask, n_layers, hops=None, residual=True):
    T = mask.shape[0]
    hop = (mask | torch.eye(T, dtype=torch.bool)) if residual else mask
    reached = torch.eye(T, dtype=torch.bool)
    for _ in range(n_layers if hops is None else max(hops, 0)):
        reached = (hop.int() @ reached.int()) > 0
    return reached


REACH_RIGHT = [("a matrix power", reach_matrix_power), ("row by row, in Python", reach_by_rows),
               ("a float product, clamped", reach_float_product)]
REACH_WRONG = [
    ("no residual", lambda mask, n: _reach_with(mask, n, residual=False), "the residual is missing"),
    ("one hop too few", lambda mask, n: _reach_with(mask, n, hops=n - 1), "one hop too few"),
    ("one hop too many", lambda mask, n: _reach_with(mask, n, hops=n + 1), "one hop too many"),
    ("transposed", lambda mask, n: _reach_with(mask, n).T.contiguous(), "rows and columns swapped"),
    ("the mask itself", lambda mask, n: mask.clone(), "returns the mask itself"),
    ("path counts", lambda mask, n: torch.linalg.matrix_power((mask | torch.eye(mask.shape[0], dtype=torch.bool)).int(), n),
     "counts the paths"),
    ("changes the mask in place", lambda mask, n: _reach_with(mask.fill_diagonal_(True), n), "in place"),
]

# --- overtaking_length -------------------------------------------------------------------------------------------


def overtaking_from_the_end(gru_seconds, transformer_seconds):
    answer = None
    for T in sorted(gru_seconds, reverse=True):
        if transformer_seconds[T] >= gru_seconds[T]:
            break
        answer = T
    return answer


def overtaking_all_later(gru_seconds, transformer_seconds):
    lengths = sorted(gru_seconds)
    for i, T in enumerate(lengths):
        if all(transformer_seconds[L] < gru_seconds[L] for L in lengths[i:]):
            return T
    return None


def overtaking_last_slower(gru_seconds, transformer_seconds):
    lengths = sorted(gru_seconds)
    slower = [i for i, T in enumerate(lengths) if transformer_seconds[T] >= gru_seconds[T]]
    if not slower:
        return lengths[0]
    return lengths[slower[-1] + 1] if slower[-1] + 1 < len(lengths) else None


def overtaking_first_faster(gru_seconds, transformer_seconds):
    return next((T for T in sorted(gru_seconds) if transformer_seconds[T] < gru_seconds[T]), None)


def overtaking_wrong_way(gru_seconds, transformer_seconds):
    return overtaking_all_later(transformer_seconds, gru_seconds)


def overtaking_ties(gru_seconds, transformer_seconds):
    lengths = sorted(gru_seconds)
    for i, T in enumerate(lengths):
        if all(transformer_seconds[L] <= gru_seconds[L] for L in lengths[i:]):
            return T
    return None


def overtaking_dict_order(gru_seconds, transformer_seconds):
    lengths = list(gru_seconds)  # the mistake: trusts the dict's order
    for i, T in enumerate(lengths):
        if all(transformer_seconds[L] < gru_seconds[L] for L in lengths[i:]):
            return T
    return None


def overtaking_index(gru_seconds, transformer_seconds):
    lengths = sorted(gru_seconds)
    for i in range(len(lengths)):
        if all(transformer_seconds[L] < gru_seconds[L] for L in lengths[i:]):
            return i
    return None


def overtaking_never_as_zero(gru_seconds, transformer_seconds):
    found = overtaking_all_later(gru_seconds, transformer_seconds)
    return 0 if found is None else found


OVERTAKING_RIGHT = [("from the longest length down", overtaking_from_the_end),
                    ("faster at every later length", overtaking_all_later),
                    ("after the last slower length", overtaking_last_slower)]
OVERTAKING_WRONG = [
    ("the first faster length", overtaking_first_faster, "returns the first T where the transformer is faster"),
    ("the wrong way round", overtaking_wrong_way, ("the comparison the right way round", "where the GRU is faster")),
    ("a tie counted as faster", overtaking_ties, "counts a tie as faster"),
    ("trusts the dict's order", overtaking_dict_order, "relies on the dicts' order"),
    ("a position, not a length", overtaking_index, "a position in the list"),
    ("0 for never", overtaking_never_as_zero, "return None then"),
]

CASES = {
    "rnn_forward": (RNN_RIGHT, RNN_WRONG),
    "reach": (REACH_RIGHT, REACH_WRONG),
    "overtaking_length": (OVERTAKING_RIGHT, OVERTAKING_WRONG),
}

NAMED_MISTAKES = [
    ("rnn_forward", rnn_no_carry, "uses h0 at every step"),
    ("rnn_forward", rnn_last_only, "returns only the last state"),
    ("rnn_forward", rnn_swapped, "nn.GRUCell takes the input first"),
    ("reach", REACH_WRONG[0][1], "the residual is missing"),
    ("reach", REACH_WRONG[1][1], "one hop too few"),
    ("reach", REACH_WRONG[2][1], "one hop too many"),
    ("reach", REACH_WRONG[3][1], "rows and columns swapped"),
    ("reach", REACH_WRONG[4][1], "returns the mask itself"),
    ("reach", REACH_WRONG[5][1], "counts the paths"),
    ("overtaking_length", overtaking_first_faster, "returns the first T where the transformer is faster"),
    ("overtaking_length", overtaking_ties, "counts a tie as faster"),
]

def rnn_by_nn_gru(cell, x, h0):
    """PyTorch's whole-sequence GRU with the cell's weights: the loop done for the learner."""
    gru = torch.nn.GRU(cell.input_size, cell.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, f"{name}_l0").copy_(getattr(cell, name))
    return gru(x, h0[None])[0]


DELEGATING = {
    "rnn_forward": [("nn.GRU with the cell's weights", rnn_by_nn_gru, "torch._VF.gru")],
}
HAND_BUILT = {"rnn_forward": "loop and stack"}


