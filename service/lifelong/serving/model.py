"""`lifelong.v1.ModelService` (what the model is and how its plasticity is doing) and
`lifelong.v1.AdminService` (checkpoint now)."""

from __future__ import annotations

import json

import grpc
from lifelong.client.convert import label_to_proto
from lifelong.host import ModelHost
from lifelong.v1 import lifelong_pb2 as pb
from lifelong.v1 import lifelong_pb2_grpc as pb_grpc

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
    def __init__(self, host: ModelHost) -> None:
        self.host = host

    def Checkpoint(self, request, context) -> pb.CheckpointResponse:
        if self.host.checkpoints is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no checkpoint directory configured; start the server with checkpoint_dir set",
            )
        info = self.host.checkpoint()
        return pb.CheckpointResponse(path=str(info.path), samples_learned=info.samples_learned)
