// AutoGLMSignoff module.
