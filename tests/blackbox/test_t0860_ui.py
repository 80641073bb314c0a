"""The web UI in a real browser: Debian's Chromium, headless, driven by
Selenium against the real binary. Each test fails on any console error
or Content-Security-Policy violation. Screenshots at 360 and 1280 px go
to build/ui-screenshots (not committed)."""
import os
import re
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, Server

pytestmark = pytest.mark.sqlite_only  # the UI talks to the API; the store is tested elsewhere

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = os.path.join(ROOT, "build", "ui-screenshots")
# `make ui-screenshots` sets this: the pages for docs/ui.md, one each
DOC_SHOTS = os.environ.get("SHORTD_UI_DOCS")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the session (this module holds every browser test)."""
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("ui"), "--geoip", "off").start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def no_console_errors(browser):
    """Every test ends with the browser's console free of errors (a CSP
    violation is one)."""
    browser.get_log("browser")  # what earlier tests left
    yield
    bad = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")
           and not api_refusal(e)]
    assert not bad, bad


def api_refusal(entry):
    """Chromium logs each 4xx answer to fetch() as an error of the network;
    those of the API are answers the page shows (a field error, a session
    that ended). Script errors and CSP violations are never excused."""
    return entry.get("source") == "network" and re.search(
        r"/api/v1/\S* - Failed to load resource: the server responded with a status of 4\d\d",
        entry["message"]) is not None


def wait(browser, cond, timeout=10):
    return WebDriverWait(browser, timeout).until(cond)


def visible(browser, id_):
    return wait(browser, EC.visibility_of_element_located((By.ID, id_)))


def text_is(browser, id_, text):
    wait(browser, lambda d: d.find_element(By.ID, id_).text == text)


def sign_in(browser, ui, key):
    browser.get(ui.base + "/")
    field = visible(browser, "signin-key")
    field.clear()
    field.send_keys(key, Keys.ENTER)
    visible(browser, "view-links")


def sign_out(browser):
    browser.find_element(By.ID, "sign-out").click()
    visible(browser, "view-signin")


def shoot(browser, name):
    os.makedirs(SHOTS, exist_ok=True)
    for width in (360, 1280):
        browser.set_window_size(width, 900)
        time.sleep(0.2)
        browser.save_screenshot(os.path.join(SHOTS, f"{name}-{width}.png"))
    if DOC_SHOTS:
        browser.set_window_size(960, 720)
        time.sleep(0.2)
        browser.save_screenshot(os.path.join(DOC_SHOTS, f"{name}.png"))
    browser.set_window_size(1280, 900)


def row(browser, code):
    return browser.find_elements(By.CSS_SELECTOR, f'tr[data-code="{code}"]')


def test_sign_in_create_search_edit_delete(browser, ui):
    browser.get(ui.base + "/")
    visible(browser, "signin-key").send_keys("shortd_AAAAAAAAAA_" + "B" * 43, Keys.ENTER)
    wait(browser, lambda d: "not valid" in d.find_element(By.ID, "signin-error").text)
    shoot(browser, "signin")
    sign_in(browser, ui, ui.key)
    # the key is nowhere in the page's storage, and the cookie is HttpOnly
    assert browser.execute_script(
        "return localStorage.length + sessionStorage.length") == 0
    assert "shortd_session" not in browser.execute_script("return document.cookie")
    # a field error next to the field it names
    visible(browser, "create-url").send_keys("ftp://example.com/x", Keys.ENTER)
    err = browser.find_element(By.ID, "create-url-error")
    wait(browser, lambda d: "http" in err.text)
    assert browser.find_element(By.ID, "create-url").get_attribute("aria-invalid") == "true"
    # a link made, then listed
    url = browser.find_element(By.ID, "create-url")
    url.clear()
    url.send_keys("https://example.com/from-the-ui")
    browser.find_element(By.ID, "create-alias").send_keys("ui-made")
    browser.find_element(By.ID, "create-submit").click()
    wait(browser, lambda d: row(d, "ui-made"))
    assert err.text == ""
    assert ui.request("GET", "/ui-made").headers["location"] == "https://example.com/from-the-ui"
    ui.create("https://example.com/other", alias="ui-other")
    # search
    q = browser.find_element(By.ID, "search-q")
    q.send_keys("from-the", Keys.ENTER)
    wait(browser, lambda d: row(d, "ui-made") and not row(d, "ui-other"))
    q.clear()
    q.send_keys(Keys.ENTER)
    wait(browser, lambda d: row(d, "ui-other"))
    shoot(browser, "links")
    # edit
    row(browser, "ui-made")[0].find_element(By.CSS_SELECTOR, 'button[aria-label="Edit ui-made"]').click()
    edit = visible(browser, "edit-url")
    edit.clear()
    edit.send_keys("https://example.com/edited")
    browser.find_element(By.ID, "edit-save").click()
    wait(browser, lambda d: "example.com/edited" in row(d, "ui-made")[0].text)
    assert ui.request("GET", "/ui-made").headers["location"] == "https://example.com/edited"
    # delete, after a confirmation
    row(browser, "ui-made")[0].find_element(By.CSS_SELECTOR, 'button[aria-label="Delete ui-made"]').click()
    visible(browser, "delete-confirm").click()
    wait(browser, lambda d: not row(d, "ui-made"))
    assert ui.request("GET", "/ui-made").status == 410
    sign_out(browser)
    assert ui.request("GET", "/api/v1/links", key=False,
                      headers={"Cookie": "x=1"}).status == 401


def test_stats_and_qr(browser, ui, tmp_path):
    link = ui.create("https://example.com/counted", alias="ui-stats")
    for _ in range(3):  # clicks from another client
        ui.request("GET", "/ui-stats", headers={"User-Agent": FIREFOX}, key=False)
    sign_in(browser, ui, ui.key)
    browser.get(ui.base + "/#/stats/ui-stats")
    text_is(browser, "stats-clicks", "3")
    assert "example.com/counted" in browser.find_element(By.ID, "stats-target").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#view-stats canvas")) == 6
    shoot(browser, "stats")
    # the live counter moves within 2 s of a click elsewhere, without a reload
    wait(browser, lambda d: d.find_element(By.ID, "stats-live-state").text == "(live)")
    ui.request("GET", "/ui-stats", headers={"User-Agent": FIREFOX}, key=False)
    t0 = time.monotonic()
    text_is(browser, "stats-live", "1")
    assert time.monotonic() - t0 < 2
    assert browser.find_element(By.ID, "stats-clicks").text == "3"  # the page was not reloaded
    # dates of one's choice: today only has the four clicks; a range the wrong way round
    # is an error shown beside the form
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.ID, "stats-range")).select_by_value("custom")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    set_value = "arguments[0].value = arguments[1]"
    browser.execute_script(set_value, visible(browser, "stats-from"), today)
    browser.execute_script(set_value, browser.find_element(By.ID, "stats-to"), today)
    browser.find_element(By.ID, "stats-refresh").click()
    text_is(browser, "stats-clicks", "4")
    browser.execute_script(set_value, browser.find_element(By.ID, "stats-from"), "2099-01-01")
    browser.find_element(By.ID, "stats-refresh").click()
    wait(browser, lambda d: "after" in d.find_element(By.ID, "stats-error").text)
    # the QR dialog shows the code; its PNG decodes to the short URL
    browser.get(ui.base + "/#/")
    wait(browser, lambda d: row(d, "ui-stats"))
    row(browser, "ui-stats")[0].find_element(By.CSS_SELECTOR, 'button[aria-label="QR code of ui-stats"]').click()
    img = visible(browser, "qr-img")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    png_url = browser.find_element(By.ID, "qr-png").get_attribute("href")
    cookie = browser.get_cookie("shortd_session")["value"]
    req = urllib.request.Request(png_url, headers={"Cookie": "shortd_session=" + cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"] == "image/png"
        (tmp_path / "qr.png").write_bytes(r.read())
    out = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == link["short_url"]
    browser.find_element(By.CSS_SELECTOR, "#dlg-qr [data-close]").click()
    sign_out(browser)


def test_keyboard_only_create(browser, ui):
    sign_in(browser, ui, ui.key)
    url = visible(browser, "create-url")
    url.click()
    order = []
    for _ in range(12):  # a date-time field takes a Tab for each of its parts
        now = browser.switch_to.active_element.get_attribute("id")
        if not order or order[-1] != now:
            order.append(now)
        if now == "create-submit":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert order == ["create-url", "create-alias", "create-expires", "create-redirect",
                     "create-submit"], order
    url.send_keys("https://example.com/keyboard")
    browser.find_element(By.ID, "create-alias").send_keys("ui-keys")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, lambda d: row(d, "ui-keys"))
    assert "Created" in browser.find_element(By.ID, "create-status").text
    sign_out(browser)


def test_keys_page_and_revoke_ends_the_session(browser, ui):
    sign_in(browser, ui, ui.key)
    browser.find_element(By.ID, "nav-keys").click()
    visible(browser, "key-name").send_keys("ui-user")
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    key = visible(browser, "key-new-value").text
    assert key.startswith("shortd_")
    key_id = key.split("_")[1]
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-key="{key_id}"]'))
    shoot(browser, "keys")
    sign_out(browser)
    # the user's own session: no keys page for it
    sign_in(browser, ui, key)
    assert not browser.find_element(By.ID, "nav-keys").is_displayed()
    # revoked elsewhere: the next request of the page finds the session ended
    assert ui.request("DELETE", "/api/v1/keys/" + key_id).status == 204
    browser.find_element(By.ID, "search-q").send_keys(Keys.ENTER)
    visible(browser, "view-signin")
