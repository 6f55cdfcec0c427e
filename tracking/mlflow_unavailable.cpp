// The MLflow entry points of a build without libcurl (DPTRAIN_WITH_MLFLOW=OFF, or AUTO without it): each throws
// one error naming the option, so that tracking.sinks = ["mlflow"] or `dptrain runs sync` says how to get them.
#include "core/check.h"
#include "tracking/mlflow_sink.h"

namespace dpt::tracking {
namespace {

[[noreturn]] void not_built(const char* what) {
  DPT_THROW(what, " needs the MLflow sink, which this dptrain was built without (DPTRAIN_WITH_MLFLOW=OFF, or AUTO ",
            "without libcurl): install libcurl4-openssl-dev and rebuild with -DDPTRAIN_WITH_MLFLOW=ON, or drop ",
            "\"mlflow\" from tracking.sinks");
}

}  // namespace

MlflowOptions mlflow_options(const Config&) { not_built("tracking.sinks = [\"mlflow\"]"); }

std::unique_ptr<Sink> make_mlflow_sink(const RunInfo&, const MlflowOptions&) { not_built("the mlflow sink"); }

MlflowSyncReport sync_mlflow_run(const std::string&, const MlflowOptions&) { not_built("dptrain runs sync"); }

}  // namespace dpt::tracking
