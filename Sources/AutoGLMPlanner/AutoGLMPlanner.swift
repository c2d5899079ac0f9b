// AutoGLMPlanner module.
