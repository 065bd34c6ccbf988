"""Right and wrong answers to lesson 08's exercises, in the format of tests/test_checks.py.

CASES: exercise name -> (right answers, wrong answers); each wrong one names words its diagnosis must contain.
NAMED_MISTAKES: the classic mistakes the course's issue lists, each diagnosed by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# --- next_token_loss ---------------------------------------------------------------------------------------------

def loss_right(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=pad_id)


def loss_masked_by_hand(logits, ids, pad_id):
    log_probs = logits[:, :-1].log_softmax(-1)  # (B, T-1, V)
    targets = ids[:, 1:]
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    real = targets != pad_id
    return -(picked * real).sum() / real.sum()


def loss_boolean_index(logits, ids, pad_id):
    predictions, targets = logits[:, :-1], ids[:, 1:]
    real = targets != pad_id
    return F.cross_entropy(predictions[real], targets[real])


def loss_transpose(logits, ids, pad_id):
    # cross_entropy also takes (batch, classes, positions)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], ignore_index=pad_id)


def loss_log_softmax_nll(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.nll_loss(logits[:, :-1].log_softmax(-1).reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=pad_id)


def loss_no_shift(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1), ignore_index=pad_id)


def loss_wrong_way(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), ids[:, :-1].reshape(-1), ignore_index=pad_id)


def loss_padding_counted(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))


def loss_input_padding(logits, ids, pad_id):
    real = ids[:, :-1] != pad_id  # the mistake: where the input is padding
    return F.cross_entropy(logits[:, :-1][real], ids[:, 1:][real])


def loss_pad_zero(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=0)


def loss_sum(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=pad_id,
                           reduction="sum")


def loss_mean_per_sentence(logits, ids, pad_id):
    per_position = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], ignore_index=pad_id, reduction="none")
    real = ids[:, 1:] != pad_id
    return (per_position.sum(1) / real.sum(1)).mean()


def loss_all_positions(logits, ids, pad_id):
    per_position = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], ignore_index=pad_id, reduction="none")
    return per_position.mean()  # divides by padding positions too


def loss_softmax_first(logits, ids, pad_id):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].softmax(-1).reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=pad_id)


def loss_item(logits, ids, pad_id):
    return loss_right(logits, ids, pad_id).item()


def loss_detached(logits, ids, pad_id):
    return loss_right(logits, ids, pad_id).detach()


LOSS_RIGHT = [
    ("F.cross_entropy, ignore_index", loss_right),
    ("log_softmax, gather, mask by hand", loss_masked_by_hand),
    ("boolean index of real targets", loss_boolean_index),
    ("(batch, classes, time) layout", loss_transpose),
    ("F.nll_loss of log_softmax", loss_log_softmax_nll),
]
LOSS_WRONG = [
    ("no shift", loss_no_shift, "no shift"),
    ("shifted the wrong way", loss_wrong_way, "shifted the wrong way"),
    ("padding not ignored", loss_padding_counted, "padding not ignored"),
    ("input padding ignored", loss_input_padding, "*input* is padding"),
    ("pad id assumed 0", loss_pad_zero, "token id 0 instead of pad_id"),
    ("sum", loss_sum, "summed instead of averaged"),
    ("mean per sentence", loss_mean_per_sentence, "averaged each sentence, then the sentences"),
    ("divided by every position", loss_all_positions, "divided by every position"),
    ("softmax before cross_entropy", loss_softmax_first, "applied softmax before F.cross_entropy"),
    (".item()", loss_item, "Python float"),
    (".detach()", loss_detached, "cut off from autograd"),
]


# --- sample_next_token -------------------------------------------------------------------------------------------

def sample_right(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator).squeeze(-1)


def sample_gumbel(logits, temperature, generator):
    if not temperature:
        return logits.argmax(-1)
    uniform = torch.rand(logits.shape, generator=generator).clamp_min(1e-12)
    return (logits / temperature - torch.log(-torch.log(uniform))).argmax(-1)


def sample_inverse_cdf(logits, temperature, generator):
    if temperature <= 0:
        return torch.max(logits, dim=1).indices
    cumulative = torch.softmax(logits / temperature, dim=1).cumsum(dim=1)
    u = torch.rand(logits.shape[0], 1, generator=generator)
    return (cumulative < u).sum(dim=1).clamp(max=logits.shape[1] - 1)


def sample_exp_unnormalised(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    weights = torch.exp((logits - logits.max(-1, keepdim=True).values) / temperature)
    return torch.multinomial(weights, num_samples=1, generator=generator)[:, 0]


def sample_times_temperature(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits * temperature, -1), 1, generator=generator).squeeze(-1)


def sample_from_logits(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(logits / temperature, 1, generator=generator).squeeze(-1)


def sample_global_rng(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / temperature, -1), 1).squeeze(-1)


def sample_categorical(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.distributions.Categorical(logits=logits / temperature).sample()


def sample_argmax_batch_axis(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(0)
    return sample_right(logits, temperature, generator)


def sample_divides_by_zero(logits, temperature, generator):
    return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(-1)


def sample_keepdim(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)


def sample_always_greedy(logits, temperature, generator):
    return logits.argmax(-1)


def sample_ignores_temperature(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)


def sample_softmax_batch_axis(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / temperature, dim=0), 1, generator=generator).squeeze(-1)


def sample_fresh_generator(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    mine = torch.Generator().manual_seed(0)
    return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=mine).squeeze(-1)


def sample_in_place(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    logits /= temperature
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)


SAMPLE_RIGHT = [
    ("softmax + multinomial", sample_right),
    ("Gumbel-max with the generator", sample_gumbel),
    ("inverse CDF with the generator", sample_inverse_cdf),
    ("unnormalised exp weights", sample_exp_unnormalised),
]
SAMPLE_WRONG = [
    ("multiplied by the temperature", sample_times_temperature, "multiplies the logits by the temperature"),
    ("sampled from the logits", sample_from_logits, "sampled from the raw logits"),
    ("global random generator", sample_global_rng, "ignores the generator"),
    ("Categorical without the generator", sample_categorical, "ignores the generator"),
    ("a new generator inside", sample_fresh_generator, "ignores the generator"),
    ("argmax over the batch axis", sample_argmax_batch_axis, "over the batch axis"),
    ("divides by temperature 0", sample_divides_by_zero, "divides by temperature 0"),
    ("keeps the sample axis", sample_keepdim, ".squeeze(-1)"),
    ("always greedy", sample_always_greedy, "always picks the likeliest token"),
    ("ignores the temperature", sample_ignores_temperature, "ignores the temperature"),
    ("softmax over the batch axis", sample_softmax_batch_axis, "softmax over the batch axis"),
    ("divides the logits in place", sample_in_place, "in place"),
]


# --- train_step --------------------------------------------------------------------------------------------------

def step_right(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_slice_logits(model, optimizer, ids, pad_id):
    model.zero_grad(set_to_none=True)
    logits = model(ids)[:, :-1]  # a causal model: position t never sees t + 1, so this is the same
    targets = ids[:, 1:]
    real = targets != pad_id
    loss = F.cross_entropy(logits[real], targets[real])
    loss.backward()
    optimizer.step()
    return float(loss)


def step_buggy(model, optimizer, ids, pad_id):
    """The loop the exercise gives: four bugs."""
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
    loss.backward()
    optimizer.step()
    return loss


def step_no_zero_grad(model, optimizer, ids, pad_id):
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_shift(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_padding_counted(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_step(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    return loss.item()


def step_zero_grad_late(model, optimizer, ids, pad_id):
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_returns_tensor(model, optimizer, ids, pad_id):
    optimizer.zero_grad()
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)
    loss.backward()
    optimizer.step()
    return loss


def step_loss_after(model, optimizer, ids, pad_id):
    step_right(model, optimizer, ids, pad_id)
    with torch.no_grad():
        logits = model(ids[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id).item()


STEP_RIGHT = [("zero_grad, loss, backward, step", step_right),
              ("model.zero_grad, slice the logits, boolean mask", step_slice_logits)]
STEP_WRONG = [
    ("the given buggy loop", step_buggy, "as if each position could see the token it must predict, and it changes "
                                         "when only the padding changes"),
    ("no zero_grad", step_no_zero_grad, "not one step on this batch's gradient alone"),
    ("no shift", step_no_shift, "as if each position could see the token it must predict"),
    ("padding counted", step_padding_counted, "changes when only the padding changes"),
    ("no step", step_no_step, "did not change, so the loss cannot fall"),
    ("zero_grad between backward and step", step_zero_grad_late, "did not change"),
    ("returns the tensor", step_returns_tensor, "returns a tensor"),
    ("loss after the step", step_loss_after, "after the update"),
]


CASES = {
    "next_token_loss": (LOSS_RIGHT, LOSS_WRONG),
    "sample_next_token": (SAMPLE_RIGHT, SAMPLE_WRONG),
    "train_step": (STEP_RIGHT, STEP_WRONG),
}

NAMED_MISTAKES = [
    ("next_token_loss", loss_no_shift, "no shift"),
    ("next_token_loss", loss_wrong_way, "shifted the wrong way"),
    ("next_token_loss", loss_padding_counted, "padding not ignored"),
    ("next_token_loss", loss_input_padding, "ignores the positions whose *input* is padding"),
    ("next_token_loss", loss_sum, "summed instead of averaged"),
    ("next_token_loss", loss_mean_per_sentence, "averaged each sentence, then the sentences"),
    ("next_token_loss", loss_softmax_first, "applied softmax before F.cross_entropy"),
    ("sample_next_token", sample_times_temperature, "multiplies the logits by the temperature"),
    ("sample_next_token", sample_from_logits, "sampled from the raw logits"),
    ("sample_next_token", sample_global_rng, "ignores the generator"),
    ("sample_next_token", sample_argmax_batch_axis, "over the batch axis"),
    ("sample_next_token", sample_divides_by_zero, "divides by temperature 0"),
    ("train_step", step_no_zero_grad, "not one step on this batch's gradient alone"),
    ("train_step", step_no_shift, "as if each position could see the token it must predict"),
    ("train_step", step_padding_counted, "changes when only the padding changes"),
    ("train_step", step_no_step, "did not change"),
    ("train_step", step_returns_tensor, "returns a tensor"),
]
