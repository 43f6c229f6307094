"""Device mesh, logical axis rules, shardings and multi-process start-up.

The mesh has three axes, as maxtext's: "data" (pure data parallelism: weights replicated), "fsdp"
(data parallelism with weights, gradients and optimizer state sharded over it, ZeRO-3 style) and
"tensor" (the heads and MLP hidden units of every layer split across devices). The batch is split
over data x fsdp. Model parameters carry logical axis names (models/dit.py LOGICAL_AXES);
LOGICAL_RULES maps them onto the mesh:

  embed (model width) -> fsdp     mlp (MLP/modulation hidden) -> tensor
  heads (attention heads x head_dim) -> tensor     norm -> replicated     batch -> (data, fsdp)

A mesh shape is (data, fsdp, tensor) with at most one -1, which takes the devices left over
(`mesh_shape`). On one process every device is in the mesh; launched as several processes
(`initialize_distributed`), the mesh spans all processes' devices and each process feeds its own
slice of the global batch (`global_batch`). Across several TPU slices (multi-slice, joined by the
data-centre network, DCN) a second shape, `dcn`, says how the slices multiply each axis, usually
(slices, 1, 1): data parallel across slices, fsdp and tensor inside each one, over its ICI links.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.experimental import mesh_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from hotdance_jax.errors import InputError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
LOGICAL_RULES = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("norm", None),
)


def mesh_shape(requested: Sequence[int], device_count: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor) sizes with a -1 filled in so that their product is device_count."""
    requested = tuple(int(n) for n in requested)
    if len(requested) != 3 or requested.count(-1) > 1 or any(n == 0 or n < -1 for n in requested):
        raise InputError(f"mesh shape {requested}: expected (data, fsdp, tensor) positive sizes "
                         "with at most one -1")
    known = math.prod(n for n in requested if n != -1)
    if -1 in requested:
        if device_count % known:
            raise InputError(f"mesh shape {requested}: {device_count} devices do not divide by "
                             f"{known}")
        requested = tuple(device_count // known if n == -1 else n for n in requested)
    if math.prod(requested) != device_count:
        raise InputError(f"mesh shape {requested} needs {math.prod(requested)} devices, "
                         f"there are {device_count}")
    return requested


def make_mesh(
    requested: Sequence[int], devices: Sequence[jax.Device] | None = None,
    dcn: Sequence[int] = (1, 1, 1),
) -> jax.sharding.Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all devices of all processes).

    With a `dcn` shape other than (1, 1, 1), the devices fall into granules (TPU slices when
    they span several, else processes: GPU hosts, CPU processes): `requested` is the mesh inside
    a granule, `dcn` the mesh of granules (at most one -1), and the mesh their product axis by
    axis, each granule a contiguous block (jax.experimental.mesh_utils.create_hybrid_device_mesh).
    """
    devices = jax.devices() if devices is None else list(devices)
    axis_types = (AxisType.Auto,) * 3
    if tuple(dcn) == (1, 1, 1):
        shape = mesh_shape(requested, len(devices))
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    by_slice = len({getattr(d, "slice_index", 0) for d in devices}) > 1
    granules = len({d.slice_index if by_slice else d.process_index for d in devices})
    kind = "slice(s)" if by_slice else "process(es)"
    try:
        dcn_shape = mesh_shape(dcn, granules)
    except InputError:
        raise InputError(f"dcn mesh {tuple(dcn)} does not fit the {granules} {kind} of this "
                         "run") from None
    if len(devices) % granules:
        raise InputError(f"{len(devices)} devices do not split evenly over {granules} {kind}")
    inner = mesh_shape(requested, len(devices) // granules)
    grid = mesh_utils.create_hybrid_device_mesh(inner, dcn_shape, devices,
                                                process_is_granule=not by_slice)
    return jax.sharding.Mesh(grid, MESH_AXES, axis_types=axis_types)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (example) axis split over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def batch_divisor(mesh: jax.sharding.Mesh) -> int:
    """The global batch must be a multiple of this: the data x fsdp devices."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def state_shardings(state: nnx.State, mesh: jax.sharding.Mesh) -> nnx.State:
    """NamedShardings of a state whose variables carry logical axis names, under LOGICAL_RULES;
    a logical axis whose mesh axes do not divide its size is replicated instead."""
    with nnx.logical_axis_rules(LOGICAL_RULES):
        specs = nnx.get_partition_spec(state)
    return jax.tree.map(lambda spec, x: NamedSharding(mesh, _fitting(spec, x.shape, mesh)),
                        specs, state)


def _fitting(spec: PartitionSpec, shape: tuple[int, ...], mesh: jax.sharding.Mesh) -> PartitionSpec:
    """`spec` with every entry that does not divide its dimension replaced by None."""
    entries = []
    for size, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        devices = math.prod(mesh.shape[n] for n in names)
        entries.append(axes if names and size % devices == 0 else None)
    return PartitionSpec(*entries)


def global_batch(local: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """This process's slice of the batch (numpy, leading example axis) -> global jax arrays split
    over data x fsdp; on one process, the local batch is the global one."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    multihost: bool = False,
) -> bool:
    """Joins this process to a multi-process run (jax.distributed.initialize); True if it did.

    With explicit arguments they are used as given. Without them, `multihost` lets jax find the
    cluster itself (a Cloud TPU VM slice keeps its workers in the VM metadata, not in the
    environment); otherwise the cluster is detected from the environment (SLURM with more than
    one task, GKE TPU slices, or JAX_COORDINATOR_ADDRESS) and a single process does nothing.
    """
    if coordinator_address or num_processes or process_id is not None:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        return True
    detected = (multihost or int(os.environ.get("SLURM_NTASKS", "1")) > 1
                or "JAX_COORDINATOR_ADDRESS" in os.environ
                or "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""))
    if detected:
        jax.distributed.initialize()
    return detected
