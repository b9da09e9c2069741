"""Machine learning: training configs, pipelines, input schemas, the model store and scoring."""
