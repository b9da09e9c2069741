"""Training recipes, their runs, and the versioned registry of trained models."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db.columns import JSONType, UTCDateTime, utcnow
from app.extensions import db


class Recipe(db.Model):
    __tablename__ = "recipes"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    recipe_type: Mapped[str] = mapped_column(sa.String(30))
    inputs: Mapped[list] = mapped_column(JSONType, default=list)
    config: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RecipeRun(db.Model):
    __tablename__ = "recipe_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(sa.ForeignKey("recipes.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")  # queued | running | success | failed
    model_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ml_models.id", ondelete="SET NULL"))
    metrics: Mapped[dict | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(sa.Text)
    task_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MLModel(db.Model):
    __tablename__ = "ml_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[int] = mapped_column()
    task_type: Mapped[str] = mapped_column(sa.String(20))
    algorithm: Mapped[str] = mapped_column(sa.String(40))
    target_column: Mapped[str] = mapped_column(sa.String(63))
    metrics: Mapped[dict] = mapped_column(JSONType, default=dict)
    feature_importance: Mapped[dict] = mapped_column(JSONType, default=dict)
    feature_columns: Mapped[list] = mapped_column(JSONType, default=list)
    input_schema: Mapped[list] = mapped_column(JSONType, default=list)
    classes: Mapped[list | None] = mapped_column(JSONType)
    # Classifiers trained since migration 0015: {class: 101 quantiles of held-out probabilities}; else None.
    score_quantiles: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    # Trained since migration 0021: the held-out ROC curves and confusion matrix (classifiers) or a sample of
    # predicted vs actual (regressors), bounded in size by app/ml/evaluation.py; else None.
    evaluation: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    artifact_path: Mapped[str] = mapped_column(sa.String(500))
    artifact_sha256: Mapped[str] = mapped_column(sa.String(64))
    sklearn_version: Mapped[str] = mapped_column(sa.String(20))
    is_active: Mapped[bool] = mapped_column(default=False)
    recipe_id: Mapped[int | None] = mapped_column(sa.ForeignKey("recipes.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (sa.UniqueConstraint("project_id", "name", "version", name="uq_ml_models_project_name_version"),)
