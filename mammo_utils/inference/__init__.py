"""Use a trained model: the Predictor, its Prediction, batch inputs, Grad-CAM maps and overlays."""
