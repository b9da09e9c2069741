"""The reference for model endpoints: a plain Flask route calling scikit-learn in the web process.

What a team would deploy instead of Apiary: load the trained pipeline once per process, build a one-row frame from
the request and call it. The artifact is the one Apiary trained (`BENCH_MODEL_ARTIFACT`, an Apiary model-store
file); each request costs one scikit-learn call, `predict_proba`, from which the label is taken as `predict` does.

    BENCH_MODEL_ARTIFACT=var/models/x.joblib gunicorn ... "bench.sklearn_app:create_app()"
    POST /predict {"features": {...}}  ->  {"predictions": [...], "probabilities": [...], "count": 1}
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)
    # The benchmark wrote this file itself (a model Apiary trained in the benchmark's own temp dir).
    pipeline = joblib.load(os.environ["BENCH_MODEL_ARTIFACT"])["estimator"]
    classes = pipeline.classes_

    @app.post("/predict")
    def predict():
        frame = pd.DataFrame([request.get_json()["features"]])
        probabilities = pipeline.predict_proba(frame)
        labels = classes[probabilities.argmax(axis=1)]
        return {
            "predictions": labels.tolist(),
            "probabilities": [
                {str(c): p for c, p in zip(classes.tolist(), row.tolist(), strict=True)} for row in probabilities
            ],
            "count": len(labels),
        }

    return app
