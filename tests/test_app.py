"""Launch flags: local-only by default, and a public link is never open without a login."""

import app


def test_binds_localhost_by_default():
    args = app.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert app.resolve_auth(args) is None


def test_share_without_auth_prints_a_random_password_once(capsys):
    first = app.resolve_auth(app.parse_args(["--share"]))
    printed = capsys.readouterr().out
    second = app.resolve_auth(app.parse_args(["--share"]))
    user, password = first
    assert len(password) >= 12 and password in printed and printed.count(password) == 1
    assert second[1] != password  # generated, not a fixed default


def test_explicit_auth_is_used_as_given():
    assert app.resolve_auth(app.parse_args(["--share", "--auth", "ana:s3cret:with-colon"])) == ("ana", "s3cret:with-colon")


def test_hub_token_reaches_the_worker_only_for_hub_models(tmp_path, monkeypatch):
    from studio.jobs import worker_env
    from studio.models.catalog import is_hub_model
    from studio.workspace import Workspace

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    workspace = Workspace(tmp_path)
    assert not is_hub_model(workspace, "tiny-demo")
    assert is_hub_model(workspace, "qwen2.5-0.5b-instruct") and is_hub_model(workspace, "Qwen/Qwen2.5-0.5B-Instruct")
    (tmp_path / "models" / "mine").mkdir()
    assert not is_hub_model(workspace, "models/mine")
    assert "HF_TOKEN" not in worker_env(pass_hub_token=False)
    assert worker_env(pass_hub_token=True)["HF_TOKEN"] == "hf_secret"
    assert "OPENAI_API_KEY" not in worker_env(pass_hub_token=True)


def test_share_without_internet_says_plainly_what_still_works(monkeypatch):
    import httpx

    def offline(*args, **kwargs):
        raise httpx.ConnectError("Name or service not known")

    monkeypatch.setattr(httpx, "get", offline)
    problem = app.public_link_problem(timeout_s=0.1)
    assert problem and "cannot be reached" in problem and "ConnectError" in problem
    message = app.no_link_message(problem, "127.0.0.1", 7860)
    assert message.startswith("No public link could be made:")
    assert "http://127.0.0.1:7860/" in message and "login" in message and "ssh -L 7860:127.0.0.1:7860" in message
    assert "share=True" not in message
