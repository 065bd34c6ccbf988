"""Messages between the check's process and the answer's process, and the plain data they carry.

A message is an 8-byte length, a JSON header and raw byte blobs (tensor and array contents). Two encodings:

- **to the answer** (``pickle_for_answer``): the check's own inputs, pickled. Functions the check defined
  (lambdas, closures) and objects of classes in ``course_lib.checks`` stay with the check: the answer gets a
  stand-in that calls back (``CallBack``), so it can call them and learn nothing else.
- **from the answer** (``encode`` / ``decode``): plain data only. ``None``, bools, numbers, strings; tensors and
  NumPy arrays of plain dtypes as shape, dtype and bytes; lists, tuples and dicts of those. Any subclass
  becomes its plain base (an ``int`` whose ``==`` always says True arrives as an ``int``); anything else
  stays in the answer's process and arrives as a handle (``{"remote": id, ...}``). ``decode`` builds only
  these types, checks every size, and never unpickles.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import socket
import struct
import time
import types

import numpy as np
import torch

MAX_MESSAGE = 64 << 20  # what one reply may carry: far more than any check needs, far less than a flood
MAX_DEPTH = 24
TENSOR_DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)}
ARRAY_DTYPES = {"float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64",
                "uint8", "uint16", "uint32", "uint64", "bool"}


class WireError(Exception):
    """A message that is not what the protocol allows (too big, malformed, a size that does not add up)."""


class Closed(WireError):
    """The other side closed the connection (its process ended)."""


class Timeout(WireError):
    """Nothing (or not all) arrived before the deadline."""


# --- framing -------------------------------------------------------------------------------------------------

def send(sock: socket.socket, header: dict, blobs: list[bytes] = ()) -> None:
    head = json.dumps({**header, "_blobs": [len(b) for b in blobs]}, allow_nan=True).encode()
    sock.sendall(struct.pack("!Q", len(head)) + head)
    for blob in blobs:
        sock.sendall(blob)


def receive(sock: socket.socket, deadline: float | None = None, limit: int = MAX_MESSAGE) -> tuple[dict, list]:
    """One message: (header, blobs). ``Timeout`` past ``deadline`` (``time.monotonic()``), ``Closed`` at EOF,
    ``WireError`` for a message over ``limit`` bytes or malformed."""
    (size,) = struct.unpack("!Q", _read(sock, 8, deadline))
    if size > limit:
        raise WireError(f"a message of {size} bytes (at most {limit})")
    try:
        header = json.loads(_read(sock, size, deadline))
        sizes = header.pop("_blobs")
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise WireError(f"a malformed message ({type(error).__name__})") from None
    if not isinstance(header, dict) or not isinstance(sizes, list) \
            or not all(type(s) is int and s >= 0 for s in sizes) or sum(sizes) > limit - size:
        raise WireError("a malformed message (its sizes)")
    return header, [_read(sock, s, deadline) for s in sizes]


def _read(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no reply in time")
            sock.settimeout(left)
        else:
            sock.settimeout(None)
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except socket.timeout:
            raise Timeout("no reply in time") from None
        except OSError as error:
            raise Closed(f"the connection broke ({error.strerror or error})") from None
        if not chunk:
            raise Closed("the other process ended")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --- from the answer: plain data only ------------------------------------------------------------------------

def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """``value`` as a plain ``torch.Tensor`` (a subclass's data without its methods)."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return value
    with torch._C.DisableTorchFunctionSubclass():
        return torch.Tensor.as_subclass(value, torch.Tensor)


def encode(value, blobs: list, handle=None, depth: int = 0):
    """``value`` as JSON-able plain data, tensor and array bytes appended to ``blobs``. ``handle(obj) -> dict``
    describes an object that cannot travel (None: such an object is an error)."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value
    if kind is int:
        return value if abs(value) < 2 ** 62 else {"int": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, bool):
        return bool(int.__int__(value))
    if isinstance(value, int):
        return encode(int.__int__(value), blobs, handle, depth + 1)
    if isinstance(value, float):
        return encode(float.__float__(value), blobs, handle, depth + 1)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, torch.Tensor):
        return _encode_tensor(value, blobs, handle)
    if isinstance(value, np.ndarray) and value.dtype.name in ARRAY_DTYPES:
        array = np.ascontiguousarray(value)
        blobs.append(array.tobytes())
        return {"array": len(blobs) - 1, "dtype": array.dtype.name, "shape": list(array.shape)}
    if isinstance(value, np.generic) and value.dtype.name in ARRAY_DTYPES:
        item = value.item()
        return {"scalar": value.dtype.name,
                "value": [item.real, item.imag] if isinstance(item, complex) else encode(item, blobs, None, depth + 1)}
    if isinstance(value, torch.Size):
        return {"size": [int(n) for n in value]}
    if isinstance(value, torch.dtype):
        return {"torch_dtype": str(value).removeprefix("torch.")}
    if isinstance(value, tuple) and (kind is tuple or hasattr(value, "_fields")):
        return {"tuple": [encode(v, blobs, handle, depth + 1) for v in tuple.__iter__(value)]}
    if kind is list:
        return {"list": [encode(v, blobs, handle, depth + 1) for v in list.__iter__(value)]}
    if kind is dict:
        return {"dict": [[encode(k, blobs, None, depth + 1), encode(v, blobs, handle, depth + 1)]
                         for k, v in dict.items(value)]}
    if handle is None:
        raise WireError(f"cannot send {kind.__name__}")
    return handle(value)


def _encode_tensor(value: torch.Tensor, blobs: list, handle):
    tensor = plain_tensor(value)
    requires_grad = bool(tensor.requires_grad)
    tensor = tensor.detach()
    dtype = str(tensor.dtype).removeprefix("torch.")
    if tensor.device.type == "meta":
        return {"meta": [int(n) for n in tensor.shape], "dtype": dtype}
    sparse = tensor.layout != torch.strided
    if sparse:
        tensor = tensor.to_dense()
    if dtype not in TENSOR_DTYPES:
        if handle is None:
            raise WireError(f"cannot send a {dtype} tensor")
        return handle(value)
    flat = tensor.cpu().contiguous().reshape(-1)
    blobs.append(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    out = {"tensor": len(blobs) - 1, "dtype": dtype, "shape": [int(n) for n in tensor.shape],
           "requires_grad": requires_grad}
    if sparse:
        out["sparse"] = True
    if isinstance(value, torch.nn.Parameter):
        out["parameter"] = True
    return out


def decode(data, blobs: list, remote=None, depth: int = 0):
    """Plain data back from ``encode``'s form; ``remote(description) -> object`` for a handle. Anything the
    form does not allow raises ``WireError``."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not dict or len(data) == 0:
        raise WireError("not plain data")
    if "tensor" in data:
        return _decode_tensor(data, blobs)
    if "meta" in data:
        dtype = _dtype(data.get("dtype"))
        return torch.empty(_shape(data["meta"]), dtype=dtype, device="meta")
    if "array" in data:
        dtype = data.get("dtype")
        if dtype not in ARRAY_DTYPES:
            raise WireError("an array of a dtype that cannot travel")
        shape = _shape(data.get("shape"))
        blob = _blob(blobs, data["array"])
        if math.prod(shape) * np.dtype(dtype).itemsize != len(blob):
            raise WireError("an array whose size does not match its shape")
        return np.frombuffer(blob, dtype=dtype).reshape(shape).copy()
    if "scalar" in data:
        dtype = data["scalar"]
        if dtype not in ARRAY_DTYPES:
            raise WireError("a scalar of a dtype that cannot travel")
        value = data.get("value")
        if isinstance(value, list) and len(value) == 2:
            value = complex(*value)
        return np.dtype(dtype).type(decode(value, blobs, None, depth + 1))
    if "int" in data:
        return int(str(data["int"])[:5000])
    if "float" in data:
        return float(str(data["float"]))
    if "size" in data:
        return torch.Size(_shape(data["size"]))
    if "torch_dtype" in data:
        return _dtype(data["torch_dtype"])
    if "tuple" in data:
        return tuple(decode(v, blobs, remote, depth + 1) for v in _items(data["tuple"]))
    if "list" in data:
        return [decode(v, blobs, remote, depth + 1) for v in _items(data["list"])]
    if "dict" in data:
        out = {}
        for pair in _items(data["dict"]):
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a malformed dict")
            key = decode(pair[0], blobs, None, depth + 1)
            try:
                out[key] = decode(pair[1], blobs, remote, depth + 1)
            except TypeError:  # an unhashable key
                raise WireError("a dict key that is not plain") from None
        return out
    if "remote" in data and remote is not None:
        if type(data["remote"]) is not int:
            raise WireError("a malformed handle")
        return remote(data)
    raise WireError("not plain data")


def _decode_tensor(data: dict, blobs: list) -> torch.Tensor:
    dtype = _dtype(data.get("dtype"))
    shape = _shape(data.get("shape"))
    blob = _blob(blobs, data["tensor"])
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if size != len(blob):
        raise WireError("a tensor whose size does not match its shape")
    if not blob:
        tensor = torch.empty(shape, dtype=dtype)
    else:
        tensor = torch.frombuffer(bytearray(blob), dtype=torch.uint8).view(dtype).reshape(shape)
    if data.get("sparse") is True:
        tensor = tensor.to_sparse()
    if data.get("parameter") is True:
        tensor = torch.nn.Parameter(tensor, requires_grad=data.get("requires_grad") is True)
    elif data.get("requires_grad") is True and (tensor.is_floating_point() or tensor.is_complex()):
        tensor.requires_grad_(True)  # a leaf here; session._with_gradients links it to the check's inputs
    return tensor


def _dtype(name) -> torch.dtype:
    if name not in TENSOR_DTYPES:
        raise WireError("a tensor of a dtype that cannot travel")
    return TENSOR_DTYPES[name]


def _shape(shape) -> list[int]:
    if type(shape) is not list or len(shape) > 32 or not all(type(n) is int and 0 <= n < 2 ** 40 for n in shape):
        raise WireError("a malformed shape")
    if math.prod(shape) > MAX_MESSAGE:
        raise WireError("a shape too large to travel")
    return shape


def _blob(blobs: list, index) -> bytes:
    if type(index) is not int or not 0 <= index < len(blobs):
        raise WireError("a malformed blob index")
    return blobs[index]


def _items(items) -> list:
    if type(items) is not list:
        raise WireError("a malformed sequence")
    return items


# --- to the answer: the check's inputs, pickled, its own functions kept back -----------------------------------

class CallBack:
    """In the answer's process: a stand-in for a function or object the check keeps. Calling it asks the
    check's process to call the real one (``serve`` answers); the answer sees nothing else of it. ``eval()``
    and ``train()`` are accepted (a model's usual calls) and do nothing."""

    __slots__ = ("_handle",)
    connection: list = [None]  # the answer's side of the current session (set by ``serve``)

    def __init__(self, handle: int):
        object.__setattr__(self, "_handle", handle)

    def __call__(self, *args, **kwargs):
        ask = CallBack.connection[0]
        if ask is None:
            raise RuntimeError("this stand-in for a check's function works only while the check runs")
        return ask(self._handle, args, kwargs)

    def forward(self, *args, **kwargs):
        return self(*args, **kwargs)

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __getattr__(self, name: str):
        raise AttributeError(f"the check's function or model can only be called (no attribute {name!r})")

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("the check's function or model can only be called")

    def __repr__(self) -> str:
        return "<the check's function>"


def _rebuild_call_back(handle: int) -> CallBack:
    return CallBack(handle)


def _rebuild_tensor(dtype: str, shape: list, data: bytes, requires_grad: bool, grad, parameter: bool):
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(TENSOR_DTYPES[dtype]).reshape(shape) \
        if data else torch.empty(shape, dtype=TENSOR_DTYPES[dtype])
    if parameter:
        tensor = torch.nn.Parameter(tensor, requires_grad=requires_grad)
    elif requires_grad:
        tensor.requires_grad_(True)
    if grad is not None:
        tensor.grad = grad
    return tensor


def _kept_back(obj) -> bool:
    """Whether ``obj`` stays in the check's process: a function or method the check defined (a lambda, a
    closure, anything of ``course_lib.checks``), or an object of a class defined there."""
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        function = obj.__func__ if isinstance(obj, types.MethodType) else obj
        module = getattr(function, "__module__", "") or ""
        return module.startswith("course_lib.checks") or "<" in function.__qualname__
    module = type(obj).__module__ or ""
    return module.startswith("course_lib.checks")


class _Pickler(pickle.Pickler):
    def __init__(self, file, keep):
        super().__init__(file, protocol=5)
        self.keep = keep

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and type(obj) in (torch.Tensor, torch.nn.Parameter) \
                and obj.layout == torch.strided and obj.device.type == "cpu" \
                and str(obj.dtype).removeprefix("torch.") in TENSOR_DTYPES:
            flat = obj.detach().contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
            grad = obj.grad if obj.grad is not None and obj.grad is not obj else None
            return _rebuild_tensor, (str(obj.dtype).removeprefix("torch."), list(obj.shape), data,
                                     bool(obj.requires_grad), grad, isinstance(obj, torch.nn.Parameter))
        if _kept_back(obj):
            return _rebuild_call_back, (self.keep(obj),)
        return NotImplemented


def pickle_for_answer(value, keep) -> bytes:
    """``value`` pickled for the answer's process; ``keep(obj) -> int`` registers an object that stays here."""
    buffer = io.BytesIO()
    _Pickler(buffer, keep).dump(value)
    return buffer.getvalue()
