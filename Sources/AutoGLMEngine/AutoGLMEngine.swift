// AutoGLMEngine module.
