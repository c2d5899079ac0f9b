// AutoGLMEmulator module.
