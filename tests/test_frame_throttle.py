"""The page script that slows Gradio's leftover animation loops reaches every HTML page, before any module."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from studio.ui.frame_throttle import SCRIPT, frame_throttle, with_script

PAGE = '<!doctype html><html><head><script type="module" src="./assets/index.js"></script></head><body></body></html>'


def _client() -> TestClient:
    async def page(request):
        return HTMLResponse(PAGE)

    async def streamed(request):
        async def parts():
            yield PAGE[:40].encode()
            yield PAGE[40:].encode()
        return StreamingResponse(parts(), media_type="text/html")

    async def config(request):
        return JSONResponse({"head": "<head>not a page</head>"})

    app = Starlette(routes=[Route("/", page), Route("/streamed", streamed), Route("/config", config, methods=["GET", "POST"])],
                    middleware=[frame_throttle()])
    return TestClient(app)


def test_the_script_comes_first_in_the_head_before_gradios_modules():
    html = with_script(PAGE.encode()).decode()
    assert html.index(SCRIPT.decode()) == html.index("<head>") + len("<head>")
    assert html.index(SCRIPT.decode()) < html.index('type="module"')
    assert with_script(b"no head here") == b"no head here"


def test_every_html_page_gets_it_with_a_right_length_and_nothing_else_changes():
    client = _client()
    for path in ("/", "/streamed"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.text.count("requestAnimationFrame") == SCRIPT.decode().count("requestAnimationFrame")
        assert response.text.startswith("<!doctype html><html><head><script>")
        assert response.text.endswith(PAGE[PAGE.index("<head>") + len("<head>"):])
        if "content-length" in response.headers:
            assert int(response.headers["content-length"]) == len(response.content)
    assert client.get("/config").json() == {"head": "<head>not a page</head>"}  # JSON is not a page
    assert client.post("/config").json() == {"head": "<head>not a page</head>"}
