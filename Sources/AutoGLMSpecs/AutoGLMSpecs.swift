// AutoGLMSpecs module.
