"""Bodies of the models area: training recipes, their runs, and the model registry."""

from marshmallow import Schema, fields, validate

RECIPE_TYPES = ("train_model",)


class RecipeCreateSchema(Schema):
    recipe_type = fields.String(required=True, validate=validate.OneOf(RECIPE_TYPES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    inputs = fields.List(
        fields.String(validate=validate.Length(min=1, max=130)),
        load_default=list,
        validate=validate.Length(max=1, error="a train_model recipe reads exactly one table"),
    )
    # Checked field by field against the input table by the service (config.<field> in every error).
    config = fields.Dict(required=True)


class RecipeCreatedSchema(Schema):
    recipe_id = fields.Integer(attribute="id")
    name = fields.String()
    recipe_type = fields.String()


class RecipeSchema(RecipeCreatedSchema):
    project_id = fields.Integer()
    inputs = fields.List(fields.String())
    run_config = fields.Dict()
    created_at = fields.DateTime()


class RunSchema(Schema):
    run_id = fields.Integer(attribute="id")
    recipe_id = fields.Integer()
    status = fields.String()
    model_id = fields.Integer(allow_none=True)
    metrics = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class RunListSchema(Schema):
    items = fields.List(fields.Nested(RunSchema))


class RunQuerySchema(Schema):
    wait = fields.Boolean(load_default=True)


class RunResultSchema(Schema):
    """What POST .../run answers: success with the model, failure with the error, or queued (wait=false)."""

    status = fields.String()
    run_id = fields.Integer()
    model_id = fields.Integer()
    metrics = fields.Dict()
    error = fields.String()


class ModelSchema(Schema):
    model_id = fields.Integer(attribute="id")
    name = fields.String()
    version = fields.Integer()
    task_type = fields.String()
    algorithm = fields.String()
    metrics = fields.Dict()
    is_active = fields.Boolean()
    feature_columns = fields.List(fields.String())


class ModelListSchema(Schema):
    models = fields.List(fields.Nested(ModelSchema))


class ModelListQuerySchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))


class ModelVersionSchema(Schema):
    model_id = fields.Integer(attribute="id")
    version = fields.Integer()
    is_active = fields.Boolean()


class ModelDetailSchema(ModelSchema):
    project_id = fields.Integer()
    target_column = fields.String()
    feature_importance = fields.Dict()
    input_schema = fields.List(fields.Dict())
    classes = fields.List(fields.Raw(), allow_none=True)
    sklearn_version = fields.String()
    recipe_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    versions = fields.List(fields.Nested(ModelVersionSchema))
    # Held-out curves stored at training (null for models trained before): {n_test, roc: [{class, auc, fpr, tpr}],
    # confusion: {labels, matrix}} for classifiers, {n_test, predicted_vs_actual: {actual, predicted}} otherwise.
    evaluation = fields.Dict(allow_none=True)


class DeletedSchema(Schema):
    ok = fields.Boolean()
    model_id = fields.Integer()
