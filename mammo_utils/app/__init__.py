"""What people use: the upload-and-predict panel, its submit form, the ``mammo`` command line, notebook setup."""
