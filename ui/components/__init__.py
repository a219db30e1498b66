"""The page's widgets: `render_*` functions, the only code that draws with streamlit besides `ui/app.py`."""
