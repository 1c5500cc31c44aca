"""`lifelong.v1.ModelService` (what the model is and how its plasticity is doing) and
`lifelong.v1.AdminService` (checkpoints, pause and resume, roll back, reset, freeze and
unfreeze a torch module's submodules)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import grpc
from lifelong.checkpoint import Checkpoint, CheckpointStore
from lifelong.checkpointing import CheckpointInfo
from lifelong.client.convert import label_to_proto
from lifelong.host import ModelHost, NotFreezable
from lifelong.serving.auth import caller
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

TASKS = {"classification": pb.TASK_CLASSIFICATION, "regression": pb.TASK_REGRESSION}


class ModelServicer(pb_grpc.ModelServiceServicer):
    def __init__(self, host: ModelHost) -> None:
        self.host = host
        # The learner's configuration never changes while serving ({}: a learner without one).
        config = host.config()
        self.config_json = json.dumps(config.to_dict() if config is not None else {})

    def GetModelInfo(self, request, context) -> pb.GetModelInfoResponse:
        predictor = self.host.predictor
        return pb.GetModelInfoResponse(
            task=TASKS[self.host.task],
            feature_names=predictor.feature_names,
            classes=[label_to_proto(c) for c in getattr(predictor, "classes", ())],
            samples_learned=self.host.samples_learned,
            model_version=predictor.version,
            config_json=self.config_json,
        )

    def GetPlasticityStats(self, request, context) -> pb.GetPlasticityStatsResponse:
        stats = self.host.stats()
        return pb.GetPlasticityStatsResponse(
            layers=[
                pb.LayerStats(
                    layer=i,
                    width=layer.width,
                    dead_fraction=layer.dead_fraction,
                    dormant_fraction=layer.dormant_fraction,
                    tau_dormant_fraction=layer.tau_dormant_fraction,
                    effective_rank=layer.effective_rank,
                    mean_abs_weight=layer.mean_abs_weight,
                    units_replaced=layer.units_replaced,
                )
                for i, layer in enumerate(stats.layers)
            ],
            gradient_norm=stats.gradient_norm,
            mean_abs_weight=stats.mean_abs_weight,
            prequential_score=stats.prequential_score,
            prequential_loss=stats.prequential_loss,
            drifts_detected=stats.drifts_detected,
            samples_learned=stats.samples_learned,
        )


class AdminServicer(pb_grpc.AdminServiceServicer):
    """Operators' calls: each one that changes something is logged with who asked (`caller`)
    and counted (`lifelong_admin_actions_total{action}`, by the host)."""

    def __init__(self, host: ModelHost) -> None:
        self.host = host

    def _need_checkpoints(self, context) -> None:
        store = self.host.checkpoints
        if store is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no checkpoint directory configured; start the server with checkpoint_dir set",
            )
        if not isinstance(store, CheckpointStore):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "with kafka_standby, checkpoints are written to the checkpoint topic by the "
                "active learner's transactions only; Checkpoint, ListCheckpoints, RollBack, "
                "ResetModel and (Un)freezeSubmodules need a learner with checkpoint_dir and "
                "kafka_standby off",
            )

    def Checkpoint(self, request, context) -> pb.CheckpointResponse:
        self._need_checkpoints(context)
        info = self.host.checkpoint()
        self.host.metrics.admin_actions["checkpoint"].inc()
        log.info("checkpoint %s written, asked by %s", info.path, caller(context))
        return pb.CheckpointResponse(path=str(info.path), samples_learned=info.samples_learned)

    def ListCheckpoints(self, request, context) -> pb.ListCheckpointsResponse:
        self._need_checkpoints(context)
        return pb.ListCheckpointsResponse(
            checkpoints=[checkpoint_info(c) for c in self.host.checkpoints_on_disk()]
        )

    def PauseLearning(self, request, context) -> pb.LearningState:
        self.host.pause()
        log.warning("learning paused by %s; predictions go on", caller(context))
        return self._state()

    def ResumeLearning(self, request, context) -> pb.LearningState:
        self.host.resume()
        log.warning("learning resumed by %s", caller(context))
        return self._state()

    def _state(self) -> pb.LearningState:
        return pb.LearningState(paused=self.host.paused, samples_learned=self.host.samples_learned)

    def RollBack(self, request, context) -> pb.ModelReplaced:
        self._need_checkpoints(context)
        try:
            info = self.host.roll_back(request.sequence)
        except KeyError:
            available = [c.sequence for c in self.host.checkpoints_on_disk()]
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no intact checkpoint {request.sequence}; the server has {available or 'none'} "
                "(ListCheckpoints)",
            )
        except ValueError as e:  # another task's model, or a state this build cannot read
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"checkpoint {request.sequence}: {e}"
            )
        log.warning(
            "model rolled back to checkpoint %d by %s: %d samples learned, offsets %s; saved as %s",
            request.sequence, caller(context), info.samples_learned, info.offsets, info.path,
        )  # fmt: skip
        return self._replaced(info)

    def ResetModel(self, request, context) -> pb.ModelReplaced:
        if self.host.checkpoints is not None:
            self._need_checkpoints(context)  # the reset is saved at once
        if not self.host.can_reset:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server cannot reset its model")
        info = self.host.reset()
        log.warning("model reset to a fresh one by %s", caller(context))
        return self._replaced(info)

    def FreezeSubmodules(self, request, context) -> pb.FrozenSubmodules:
        return self._freeze(request.names, True, context)

    def UnfreezeSubmodules(self, request, context) -> pb.FrozenSubmodules:
        return self._freeze(request.names, False, context)

    def _freeze(self, names: Sequence[str], frozen: bool, context) -> pb.FrozenSubmodules:
        verb = "freeze" if frozen else "unfreeze"
        if not names:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name the submodules to {verb}")
        if self.host.checkpoints is not None:
            self._need_checkpoints(context)  # the change is saved at once
        try:
            now, info = self.host.freeze(list(names), frozen)
        except NotFreezable as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except ValueError as e:  # a name the module does not have; nothing changed
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        log.warning(
            "%s %s by %s; frozen now: %s", verb, ", ".join(names), caller(context), list(now)
        )
        answer = pb.FrozenSubmodules(frozen=now, samples_learned=self.host.samples_learned)
        if info is not None:
            answer.checkpoint.CopyFrom(checkpoint_info(info))
        return answer

    def _replaced(self, info: CheckpointInfo | None) -> pb.ModelReplaced:
        answer = pb.ModelReplaced(samples_learned=self.host.samples_learned)
        if info is not None:
            answer.checkpoint.CopyFrom(checkpoint_info(info))
        return answer


def checkpoint_info(checkpoint: Checkpoint | CheckpointInfo) -> pb.CheckpointInfo:
    info = pb.CheckpointInfo(
        sequence=checkpoint.sequence,
        path=str(checkpoint.path),
        samples_learned=checkpoint.samples_learned,
        offsets=checkpoint.offsets,
    )
    info.create_time.FromNanoseconds(int(checkpoint.created * 1e9))
    return info
