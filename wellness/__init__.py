"""The wellness plan: a task type that coordinates the two domain agents (``npa`` builds meal
plans, ``wpa`` workout plans), shipped as a task type plugin (``wellness.tasks``) that
cluster.yaml names. The runtime (``mca``) never imports this package."""
