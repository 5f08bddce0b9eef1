"""The models: how they are built (:mod:`~mammo_utils.models.networks`) and which trained versions exist
(:mod:`~mammo_utils.models.registry`)."""
