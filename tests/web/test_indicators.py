"""The experimenter page's subject indicator counts the feedback peers connected."""

from __future__ import annotations

from conftest import log_in


def test_subject_indicator_counts_feedback_pages(browser, page, server_factory):
    server = server_factory(subject_remote=True)
    log_in(page, server)
    page.wait_for_selector("#ind-subject[data-state='off']")  # required, nobody connected
    assert "no subject service" in page.get_attribute("#ind-subject", "title")
    participant = browser.new_context(viewport={"width": 1366, "height": 768})
    feedback = participant.new_page()
    try:
        log_in(feedback, server)
        feedback.goto(server.url + "feedback")
        page.wait_for_selector("#ind-subject[data-state='on']")
        assert page.text_content("#ind-subject-label") == "subject (1)"
        assert "feedback page" in page.get_attribute("#ind-subject", "title")
    finally:
        participant.close()
    page.wait_for_selector("#ind-subject[data-state='off']")
    assert page.text_content("#ind-subject-label") == "subject"
