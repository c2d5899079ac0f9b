// AutoGLMEvaluation module.
